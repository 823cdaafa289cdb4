"""Readers and writers for COCO JSON, Pascal VOC, YOLO and the notes' txt format.

``read_dataset(path, fmt)`` returns a :class:`~cvpipe.detection.annotations.DetectionDataset`
whose ``issues`` list every file, line or object that could not be used (each skipped on its
own: one bad file never stops the rest). ``write_dataset(ds, dst, fmt)`` writes annotations
and places the images (copy, hard link or none).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Optional

from cvpipe.detection.annotations import DetectionDataset, ImageInfo, Issue, NoAnnotationFiles
from cvpipe.detection.formats.coco import ROBOFLOW_NAME, read_coco, write_coco
from cvpipe.detection.formats.txt import read_txt, write_txt
from cvpipe.detection.formats.voc import read_voc, write_voc
from cvpipe.detection.formats.yolo import find_data_yaml, read_yolo, write_yolo
from cvpipe.detection.names import FORMATS, IMAGE_MODES
from cvpipe.errors import DataError

NO_IMAGES = "written without images (--images none)"  # starts the warning write_dataset gives for YOLO
FORMAT_NAMES = {"coco": "COCO", "voc": "Pascal VOC", "yolo": "YOLO", "txt": "txt"}

_READERS: dict[str, Callable] = {"coco": read_coco, "voc": read_voc, "yolo": read_yolo, "txt": read_txt}
_WRITERS: dict[str, Callable] = {"coco": write_coco, "voc": write_voc, "yolo": write_yolo, "txt": write_txt}


def detect_format(path) -> str:
    """Guess the format of a dataset path: a ``.json`` file or a folder with
    ``annotations/*.json`` is COCO, ``Annotations/*.xml`` VOC, ``Annotations/*.txt`` the txt
    format, a data YAML or ``images/`` + ``labels/`` YOLO."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        if path.suffix.lower() in (".yaml", ".yml"):
            return "yolo"
        raise DataError(f"{path}: cannot tell the dataset format of this file; pass the format explicitly")
    ann = path / "Annotations"
    if ann.is_dir():
        if next(ann.rglob("*.xml"), None) is not None:
            return "voc"
        if next(ann.rglob("*.txt"), None) is not None or any(path.glob("filelist*.txt")):
            return "txt"
    if (path / "annotations").is_dir() and any((path / "annotations").glob("*.json")):
        return "coco"
    if find_data_yaml(path) is not None or ((path / "images").is_dir() and (path / "labels").is_dir()):
        return "yolo"
    if any(path.glob("*.json")) or any(path.glob(f"*/{ROBOFLOW_NAME}")):
        return "coco"
    raise DataError(f"{path}: not a COCO, VOC, YOLO or txt dataset that cvpipe recognises; pass the format explicitly")


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise DataError(f"unknown dataset format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return fmt


def read_dataset(path, fmt: Optional[str] = None, *, classes=None, image_root=None) -> DetectionDataset:
    """Read a detection dataset.

    Args:
        path: dataset folder (or a COCO JSON / YOLO data YAML file).
        fmt: ``"coco"``, ``"voc"``, ``"yolo"`` or ``"txt"``; detected when None.
        classes: explicit class list (names, ids 1..K, or :class:`Category` objects) for the
            formats that store names or indices only (VOC, YOLO, txt).
        image_root: where the images are, when not in the format's usual place (COCO, VOC).

    Returns:
        The dataset; ``ds.issues`` lists what was skipped or looked wrong while reading.
    """
    fmt = _check_format(fmt or detect_format(path))
    if not Path(path).exists():
        raise DataError(f"{path}: no such file or folder")
    try:
        return _READERS[fmt](path, image_root=image_root, classes=classes)
    except NoAnnotationFiles as e:  # usually the wrong format for this folder: say which one it looks like
        try:
            other = detect_format(path)
        except DataError:
            raise e from None
        if other == fmt:
            raise
        raise NoAnnotationFiles(f"{e}; is it a {FORMAT_NAMES[other]} dataset? give the format {other} "
                                f"(--from / --format {other})") from None


def image_placer(mode: str = "copy") -> Callable[[ImageInfo, Path], list[Issue]]:
    """A function ``place(image, target)`` that copies or hard-links the image file to
    ``target`` (``"none"`` writes annotations only). A missing source file is an issue, not
    an exception."""
    if mode not in IMAGE_MODES:
        raise DataError(f"unknown image mode {mode!r}; expected one of {', '.join(IMAGE_MODES)}")

    def place(image: ImageInfo, target: Path) -> list[Issue]:
        if mode == "none":
            return []
        source = image.path
        if source is None or not Path(source).is_file():
            return [Issue(image.source or image.file_name, f"image file {source or image.file_name} is missing; not copied")]
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.unlink()
        if mode == "hardlink":
            try:
                os.link(source, target)
                return []
            except OSError:
                pass  # another file system, or links not allowed: fall back to a copy
        shutil.copy2(source, target)
        return []

    return place


def write_dataset(ds: DetectionDataset, dst, fmt: str, *, images: str = "copy") -> list[Issue]:
    """Write ``ds`` to the folder ``dst`` in ``fmt``; ``images`` is ``"copy"``, ``"hardlink"``
    or ``"none"``. Returns the issues met (e.g. image files that could not be copied).

    YOLO without images is written, with a warning unless ``dst`` already holds an ``images/``
    folder: its labels are fractions of sizes that only the image files hold, so the dataset
    is unusable until the images are put in place (a user may well do that, e.g. on the
    training machine)."""
    fmt = _check_format(fmt)
    Path(dst).mkdir(parents=True, exist_ok=True)
    issues = _WRITERS[fmt](ds, dst, image_placer(images))
    if fmt == "yolo" and images == "none" and ds.images and not (Path(dst) / "images").is_dir():
        layout = "images/<split>/<file name>" if any(ds.splits) else "images/<file name>"
        issues.append(Issue("data.yaml", f"{NO_IMAGES}, but YOLO labels are fractions of "
                                         "the image size: data.yaml points at images/, which is absent, so training "
                                         "and cvpipe can use the dataset only once the images are put there as "
                                         f"{layout} (or convert again with --images copy or hardlink)",
                            level="warning"))
    return issues


__all__ = ["FORMATS", "IMAGE_MODES", "detect_format", "image_placer", "read_dataset", "write_dataset"]
