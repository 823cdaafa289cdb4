"""``cvpipe convert``: read a dataset in one format, optionally filter, mark and re-split it,
and write it in another, keeping boxes, ignore flags, category ids/names and splits."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from cvpipe.detection.annotations import (
    Category,
    DetectionDataset,
    Issue,
    box_defects,
    count,
    fill_image_sizes,
    first_duplicate,
)
from cvpipe.detection.formats import FORMATS, IMAGE_MODES, NO_IMAGES, detect_format, read_dataset, write_dataset
from cvpipe.detection.formats.yolo import unwritable
from cvpipe.errors import DataError


@dataclass
class ConversionReport:
    """What :func:`convert` did. ``issues`` are the reader's and writer's problems, one per
    file, line or object; ``files_with_errors`` counts the distinct files among them.
    ``written`` is False when nothing could be read, so nothing was written. ``invalid_boxes``
    counts boxes written as they are although they are outside their image, empty, have their
    corners swapped or are not finite (``cvpipe check-detection`` lists them)."""

    source: Path
    destination: Path
    src_format: str
    dst_format: str
    images: int
    objects: int
    ignored: int
    issues: list[Issue] = field(default_factory=list)
    written: bool = True
    invalid_boxes: int = 0

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def files_with_errors(self) -> int:
        return len({i.file for i in self.errors})

    def summary(self) -> str:
        if not self.written:
            return (f"nothing converted: no image of {self.source} ({self.src_format}) could be read and written "
                    f"({count(len(self.errors), 'problem')} listed above); {self.destination} was not written")
        text = (f"converted {self.source} ({self.src_format}) -> {self.destination} ({self.dst_format}): "
                f"{count(self.images, 'image')}, {count(self.objects, 'object')} ({self.ignored} ignored)")
        if self.errors:
            text += (f"; {count(len(self.errors), 'problem')} in {count(self.files_with_errors, 'file')} (listed above), "
                     "the rest converted")
        if self.invalid_boxes:
            text += (f"; {count(self.invalid_boxes, 'invalid box', 'invalid boxes')} (outside the image, empty or "
                     f"corners swapped) written as they are: `cvpipe check-detection {self.destination}` lists them")
        return text


def mark_small_boxes(ds: DetectionDataset, min_size: float) -> int:
    """Set ``ignore`` on boxes whose width or height is below ``min_size`` pixels (the notes'
    rule for the custom format). Returns how many objects became ignored."""
    if min_size <= 0 or ds.num_objects == 0:
        return 0
    w = ds.boxes[:, 2] - ds.boxes[:, 0]
    h = ds.boxes[:, 3] - ds.boxes[:, 1]
    small = ((w < min_size) | (h < min_size)) & ~ds.ignore
    ds.ignore = ds.ignore | small
    return int(small.sum())


def filter_classes(ds: DetectionDataset, include: Optional[Sequence[str]] = None,
                   exclude: Optional[Sequence[str]] = None) -> DetectionDataset:
    """Keep only the categories named in ``include`` (all when None) minus ``exclude``; objects
    of dropped categories are removed, images are kept (they become negatives)."""
    names = set(ds.class_names)
    for name in list(include or []) + list(exclude or []):
        if name not in names:
            raise DataError(f"class {name!r} is not in the dataset; classes: {', '.join(ds.class_names)}")
    keep = [c for c in ds.categories if (include is None or c.name in include) and c.name not in (exclude or ())]
    return ds.with_categories(keep)


def remap_categories(ds: DetectionDataset, category_map: Mapping[str, int]) -> DetectionDataset:
    """Give categories explicit ids (``{name: id}``); names not in the map keep their id.
    The category list is then ordered by id (COCO order, YOLO class index)."""
    bad = {k: v for k, v in category_map.items() if isinstance(v, bool) or not isinstance(v, (int, np.integer))}
    if bad:
        raise DataError(f"category map: ids must be integers, got {bad}")
    unknown = set(category_map) - set(ds.class_names)
    if unknown:
        raise DataError(f"category map names unknown classes: {', '.join(sorted(unknown))}")
    cats = [Category(int(category_map.get(c.name, c.id)), c.name, c.supercategory) for c in ds.categories]
    ids = [c.id for c in cats]
    dup = first_duplicate(ids)
    if dup is not None:
        raise DataError(f"category map gives id {dup} to several classes")
    id_map = {old.id: new.id for old, new in zip(ds.categories, cats)}
    return ds.with_categories(sorted(cats, key=lambda c: c.id), id_map)


def assign_splits(ds: DetectionDataset, val_fraction: float, seed: int = 0) -> None:
    """Re-split the images at random (seeded): ``round(val_fraction * n)`` go to ``val``, the
    rest to ``train``."""
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val fraction {val_fraction} must be in [0, 1)")
    order = np.random.default_rng(seed).permutation(len(ds.images))
    n_val = int(round(val_fraction * len(ds.images)))
    val = set(order[:n_val].tolist())
    for i, im in enumerate(ds.images):
        im.split = "val" if i in val else "train"


def _nonempty(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


# what each writer puts in its destination folder: --overwrite replaces exactly these
WRITTEN = {
    "coco": ("annotations", "images"),
    "voc": ("Annotations", "JPEGImages", "ImageSets", "classes.txt"),
    "yolo": ("images", "labels", "labels_ignore", "data.yaml"),
    "txt": ("JPEGImages", "Annotations", "Annotations_ignore", "filelist.txt", "filelist_*.txt", "classes.txt"),
}
IMAGE_FOLDER = {"coco": "images", "voc": "JPEGImages", "yolo": "images", "txt": "JPEGImages"}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def write_staged(ds: DetectionDataset, dst: Path, fmt: str, images: str) -> list[Issue]:
    """Write ``ds`` into a hidden folder inside ``dst``, then move it into place.

    A run that stops half-way (a problem found while writing, a full disk, Ctrl-C) leaves
    ``dst`` as it was. Files and folders of ``fmt``'s layout already in ``dst`` (an earlier
    conversion) are replaced as a whole, so no stale label file or split list survives;
    anything else in ``dst`` is kept, and so is the image folder when ``images`` is "none"
    (new labels for images already in place).
    """
    created = not dst.exists()
    if dst.exists() and not dst.is_dir():
        raise DataError(f"{dst}: exists and is not a folder; choose a folder for the converted dataset")
    try:
        dst.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".cvpipe-partial-", dir=dst))
    except OSError as e:
        raise DataError(f"{dst}: cannot create the destination folder ({e.strerror or e})") from None
    try:
        issues = write_dataset(ds, stage, fmt, images=images)
        kept = IMAGE_FOLDER[fmt] if images == "none" else None
        for pattern in WRITTEN[fmt]:
            for old in dst.glob(pattern):
                if old.name != kept:
                    _remove(old)
        if kept is not None and (dst / kept).is_dir():  # written aside, the stage had no images; dst has
            issues = [i for i in issues if not i.message.startswith(NO_IMAGES)]
        for entry in stage.iterdir():
            os.replace(entry, dst / entry.name)
    except OSError as e:
        raise DataError(f"{dst}: writing failed ({e}); the destination was left as it was") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not _nonempty(dst):
            dst.rmdir()
    return issues


def convert(
    src,
    dst,
    src_format: Optional[str] = None,
    dst_format: str = "coco",
    *,
    classes=None,
    include: Optional[Sequence[str]] = None,
    exclude: Optional[Sequence[str]] = None,
    category_map: Optional[Mapping[str, int]] = None,
    min_size: float = 0.0,
    val_fraction: Optional[float] = None,
    seed: int = 0,
    images: str = "copy",
    image_root=None,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert a detection dataset between COCO, VOC, YOLO and the txt format.

    Args:
        src: source dataset folder (or COCO JSON / YOLO YAML).
        dst: destination folder; must be empty or absent unless ``overwrite``, which replaces
            the folders and files of the ``dst_format`` layout in it and keeps the rest. Nothing
            in ``dst`` changes when the conversion fails.
        src_format: detected when None. dst_format: ``coco | voc | yolo | txt``.
        classes: ordered class names for formats that store none or indices only.
        include, exclude: class names to keep / drop (objects of dropped classes removed).
        category_map: ``{name: id}`` explicit category ids for the output.
        min_size: boxes narrower or lower than this (pixels) become ignored.
        val_fraction: re-split the images into train/val at random with ``seed``; None keeps
            the source's splits.
        images: ``copy``, ``hardlink`` or ``none`` (annotations only).
        image_root: where the source images are, if not in the format's usual place.

    Returns:
        A :class:`ConversionReport`; files the reader could not use are listed in its issues
        and skipped, everything else is converted.
    """
    src, dst = Path(src), Path(dst)
    # settings first: a typo must not cost a full read of a large dataset
    if dst_format not in FORMATS:
        raise DataError(f"unknown dataset format {dst_format!r}; expected one of {', '.join(FORMATS)}")
    if images not in IMAGE_MODES:
        raise DataError(f"unknown image mode {images!r}; expected one of {', '.join(IMAGE_MODES)}")
    if not (np.isfinite(min_size) and min_size >= 0):
        raise DataError(f"min size {min_size} must be a number of pixels >= 0")
    if val_fraction is not None and not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val fraction {val_fraction} must be in [0, 1)")
    include, exclude = ([names] if isinstance(names, str) else names for names in (include, exclude))
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise DataError(f"{dst}: the destination is the source; write to another folder")
    if _nonempty(dst) and not overwrite:
        raise DataError(f"{dst}: folder is not empty; choose an empty one or pass --overwrite")
    if overwrite and src.exists() and dst.exists() and src.resolve().is_relative_to(dst.resolve()):
        raise DataError(f"{dst}: the source {src} is inside the destination; write to another folder")
    src_format = src_format or detect_format(src)
    ds = read_dataset(src, src_format, classes=classes, image_root=image_root)
    if category_map:
        ds = remap_categories(ds, category_map)
    if include or exclude:
        ds = filter_classes(ds, include, exclude)
    mark_small_boxes(ds, min_size)
    if val_fraction is not None:
        assign_splits(ds, val_fraction, seed)
    if dst_format in ("coco", "voc", "yolo"):  # these store (or need) the image size
        fill_image_sizes(ds)
    issues = list(ds.issues)
    if dst_format == "yolo":  # images YOLO cannot take are left out here, so the summary counts what is written
        left_out = [unwritable(im) for im in ds.images]
        issues += [i for i in left_out if i is not None]
        ds = ds.select_images(np.array([i is None for i in left_out], dtype=bool))
    written = bool(ds.images) or not any(i.level == "error" for i in issues)  # an unreadable source: no empty output
    if written:
        issues += write_staged(ds, dst, dst_format, images)
    invalid = int(np.any(list(box_defects(ds).values()), axis=0).sum())
    return ConversionReport(src, dst, src_format, dst_format, len(ds.images), ds.num_objects,
                            int(ds.ignore.sum()), issues, written, invalid)
