"""The one in-memory form of a detection dataset, shared by every file format.

Conventions (tested in ``tests/detection``):

* Boxes are ``float64`` ``xyxy`` in continuous pixel coordinates: the origin is the top-left
  corner of the top-left pixel and a box covering pixel columns 0..9 is ``x1=0, x2=10`` (no
  ``+1``). Each format converts on the way in and out: COCO ``[x, y, w, h]``; Pascal VOC's
  1-based inclusive ``xmin..xmax`` (``x1 = xmin - 1``, ``x2 = xmax``); YOLO's normalised
  ``cx cy w h`` (needs the image size); the notes' txt pixel ``cx cy w h``.
* Boxes are kept exactly as read, never clipped or reordered, so the linter can report a
  box outside its image or with ``x2 < x1``.
* ``ignore`` marks objects that must be neither rewarded nor punished: Pascal VOC
  ``difficult``, COCO ``iscrowd`` and boxes below a ``min_size``. Every writer keeps it.
* Objects are stored column-wise (one array per field, ``N`` objects) so statistics, lint
  checks and evaluation are array operations, not loops over boxes.
* Image sizes are the *displayed* size: a JPEG whose EXIF orientation turns it by 90 degrees
  has its width and height swapped, as :func:`cvpipe.data.image_io.read_image`, OpenCV's
  ``imread`` and Ultralytics do, so boxes refer to the upright picture.
"""

from __future__ import annotations

import gc
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch

from cvpipe.errors import DataError
from cvpipe.ops.boxes import box_convert

PathLike = Union[str, Path]


class NoAnnotationFiles(DataError):
    """A reader found none of the files its format expects (``--from txt`` on a VOC folder);
    :func:`cvpipe.detection.read_dataset` adds which format the folder looks like."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Category:
    """A class: ``id`` is what COCO files store (any integers), ``name`` what VOC files store."""

    id: int
    name: str
    supercategory: str = ""


@dataclass
class ImageInfo:
    """One image of the dataset.

    ``file_name`` is a POSIX path relative to the image folder of its split (checked by
    :func:`safe_relpath`); ``width``/``height`` are 0 when unknown; ``path`` is where the
    file was found (not written out); ``source`` names the annotation file it came from, for
    messages; ``extra`` keeps format fields cvpipe does not use (COCO ``license``, ``coco_url``,
    VOC ``depth``...) so a rewrite in the same format loses nothing.
    """

    file_name: str
    width: int = 0
    height: int = 0
    id: int = 0
    split: str = ""
    path: Optional[Path] = None
    source: str = ""
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Issue:
    """A problem found while reading or checking: the file, the object index inside it (when
    one object is at fault) and what is wrong. ``level`` is ``"error"`` or ``"warning"``."""

    file: str
    message: str
    index: Optional[int] = None
    level: str = "error"

    def __str__(self) -> str:
        where = self.file if self.index is None else f"{self.file} object {self.index}"
        return f"{where}: {self.message}"


class DetectionDataset:
    """Images, categories and objects (column-wise arrays over the ``N`` objects).

    Attributes:
        images: list of :class:`ImageInfo`.
        categories: list of :class:`Category`, ids unique, in file order.
        image_index: ``(N,)`` int64, the object's image as an index into ``images``.
        boxes: ``(N, 4)`` float64 ``xyxy`` continuous pixels, as read (not clipped).
        category_id: ``(N,)`` int64 category ids (not indices).
        ignore: ``(N,)`` bool: difficult / crowd / too small.
        area: ``(N,)`` float64; COCO's stored ``area`` (a mask area for segmented objects),
            otherwise the box area. COCO evaluation uses it for the area ranges.
        annotation_id: ``(N,)`` int64 COCO annotation id, ``-1`` where the format has none.
        object_index: ``(N,)`` int64 position of the object in its annotation file (line,
            XML object or JSON list index), for messages.
        object_extra: ``N`` dicts of format fields kept for lossless rewrites (COCO
            ``segmentation``, VOC ``pose``/``truncated``...).
        info, licenses: COCO's top-level blocks, kept as read.
        issues: problems met while reading (one per bad file, line or object).
        format: the format read (``"coco"``, ``"voc"``, ``"yolo"``, ``"txt"``) or ``""``.
        numbered_ids: the image ids are cvpipe's 1..N numbering in file order (YOLO, txt, VOC
            without ``<image_id>``), not ids stored in the files: COCO results made for another
            file's ids cannot be matched to these images by id.
    """

    def __init__(
        self,
        images: Sequence[ImageInfo],
        categories: Sequence[Category],
        image_index=None,
        boxes=None,
        category_id=None,
        ignore=None,
        area=None,
        annotation_id=None,
        object_index=None,
        object_extra: Optional[Sequence[dict]] = None,
        info: Optional[dict] = None,
        licenses: Optional[list] = None,
        issues: Optional[list[Issue]] = None,
        format: str = "",
        numbered_ids: bool = False,
    ):
        self.images = list(images)
        self.categories = list(categories)
        self.boxes = np.zeros((0, 4)) if boxes is None else np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        n = len(self.boxes)

        def column(values, dtype, default):
            return np.full(n, default, dtype=dtype) if values is None else np.asarray(values, dtype=dtype).reshape(n)

        self.image_index = column(image_index, np.int64, 0)
        self.category_id = column(category_id, np.int64, 0)
        self.ignore = column(ignore, bool, False)
        self.area = box_area_np(self.boxes) if area is None else column(area, np.float64, 0.0)
        self.annotation_id = column(annotation_id, np.int64, -1)
        self.object_index = column(object_index, np.int64, 0)
        self.object_extra = [{} for _ in range(n)] if object_extra is None else list(object_extra)
        if len(self.object_extra) != n:
            raise ValueError(f"object_extra has {len(self.object_extra)} entries for {n} objects")
        if n and (self.image_index.min() < 0 or self.image_index.max() >= len(self.images)):
            raise ValueError("image_index points outside images")
        self.info = dict(info or {})
        self.licenses = list(licenses or [])
        self.issues = list(issues or [])
        self.format = format
        self.numbered_ids = numbered_ids

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_objects(self) -> int:
        return len(self.boxes)

    def __repr__(self) -> str:
        return (
            f"DetectionDataset({len(self.images)} images, {self.num_objects} objects "
            f"({int(self.ignore.sum())} ignored), {len(self.categories)} categories, format={self.format!r})"
        )

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.categories]

    @property
    def splits(self) -> list[str]:
        """Split names in first-seen order (``""`` for images without a split)."""
        return list(dict.fromkeys(im.split for im in self.images))

    def category_index(self, category_ids=None) -> np.ndarray:
        """Position of each category id in ``categories`` (``-1`` for ids not in the list).

        ``category_ids`` defaults to the objects' ``category_id``; returns int64 of its shape.
        """
        ids = self.category_id if category_ids is None else np.asarray(category_ids, dtype=np.int64)
        known = np.array([c.id for c in self.categories], dtype=np.int64)
        if len(known) == 0:
            return np.full(ids.shape, -1, dtype=np.int64)
        order = np.argsort(known, kind="stable")
        pos = np.searchsorted(known[order], ids).clip(0, len(known) - 1)
        found = known[order][pos] == ids
        return np.where(found, order[pos], -1)

    def objects_per_image(self) -> np.ndarray:
        """``(len(images),)`` int64 count of objects (ignored included) in each image."""
        return np.bincount(self.image_index, minlength=len(self.images)).astype(np.int64)

    def objects_by_image(self) -> list[np.ndarray]:
        """Object indices of each image, in file order."""
        order = np.argsort(self.image_index, kind="stable")
        starts = np.searchsorted(self.image_index[order], np.arange(len(self.images) + 1))
        return [order[starts[i]:starts[i + 1]] for i in range(len(self.images))]

    # -------------------------------------------------------------- selection
    def select_objects(self, keep) -> "DetectionDataset":
        """A dataset with the same images and only the objects where ``keep`` (bool mask or
        indices) selects them."""
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
        return DetectionDataset(
            self.images, self.categories, self.image_index[idx], self.boxes[idx], self.category_id[idx],
            self.ignore[idx], self.area[idx], self.annotation_id[idx], self.object_index[idx],
            [self.object_extra[i] for i in idx], self.info, self.licenses, self.issues, self.format,
            numbered_ids=self.numbered_ids,
        )

    def select_images(self, keep) -> "DetectionDataset":
        """A dataset with only the selected images (bool mask or indices, order kept) and their
        objects."""
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
        new_index = np.full(len(self.images), -1, dtype=np.int64)
        new_index[idx] = np.arange(len(idx))
        objs = np.flatnonzero(new_index[self.image_index] >= 0)
        # keep objects grouped in the new image order, file order inside an image
        objs = objs[np.argsort(new_index[self.image_index[objs]], kind="stable")]
        sub = self.select_objects(objs)
        sub.images = [self.images[i] for i in idx]
        sub.image_index = new_index[self.image_index[objs]]
        return sub

    def with_categories(self, categories: Sequence[Category], id_map: Optional[dict] = None) -> "DetectionDataset":
        """Replace the category list; ``id_map`` (old id -> new id) renumbers the objects, and
        objects whose category is not in the new list are dropped."""
        ds = self.select_objects(np.arange(self.num_objects))
        if id_map and ds.num_objects:
            ids, inverse = np.unique(ds.category_id, return_inverse=True)  # map the K ids, not the N objects
            ds.category_id = np.array([id_map.get(int(i), int(i)) for i in ids], dtype=np.int64)[inverse]
        ds.categories = list(categories)
        return ds.select_objects(ds.category_index() >= 0)


@dataclass
class Detections:
    """Predicted boxes for the images of one ground-truth dataset (``D`` detections).

    ``image_index`` indexes the ground truth's ``images``; ``boxes`` are ``(D, 4)`` float64
    ``xyxy`` pixels; ``scores`` ``(D,)`` float64; ``category_id`` ``(D,)`` int64 ids of the
    ground truth's categories. The order is the order read, which decides ties in score.
    """

    image_index: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    category_id: np.ndarray

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        n = len(self.boxes)
        self.image_index = np.asarray(self.image_index, dtype=np.int64).reshape(n)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(n)
        self.category_id = np.asarray(self.category_id, dtype=np.int64).reshape(n)

    def __len__(self) -> int:
        return len(self.boxes)


class DatasetBuilder:
    """Collects images, objects and issues while a reader walks its files, then builds the
    column arrays in one go."""

    def __init__(self, categories: Iterable[Category] = (), format: str = ""):
        self.images: list[ImageInfo] = []
        self.categories: list[Category] = list(categories)
        self.format = format
        self.numbered_ids = False  # set by readers that number the images 1..N themselves
        self.issues: list[Issue] = []
        self.info: dict = {}
        self.licenses: list = []
        self._cols: dict[str, list] = {k: [] for k in ("image", "box", "cat", "ignore", "area", "ann", "index", "extra")}

    def add_image(self, image: ImageInfo) -> int:
        self.images.append(image)
        return len(self.images) - 1

    def add_object(self, image: int, box, category_id: int, ignore: bool = False, area: Optional[float] = None,
                   annotation_id: int = -1, index: int = 0, extra: Optional[dict] = None) -> None:
        c = self._cols
        c["image"].append(image)
        c["box"].append(box)
        c["cat"].append(category_id)
        c["ignore"].append(bool(ignore))
        c["area"].append(np.nan if area is None else area)
        c["ann"].append(annotation_id)
        c["index"].append(index)
        c["extra"].append(extra or {})

    def issue(self, file, message: str, index: Optional[int] = None, level: str = "error") -> None:
        self.issues.append(Issue(str(file), message, index, level))

    def build(self) -> DetectionDataset:
        c = self._cols
        boxes = np.array(c["box"], dtype=np.float64).reshape(-1, 4)
        area = np.array(c["area"], dtype=np.float64)
        missing = np.isnan(area)
        area[missing] = box_area_np(boxes[missing])
        return DetectionDataset(
            self.images, self.categories, c["image"], boxes, c["cat"], c["ignore"], area, c["ann"], c["index"],
            c["extra"], self.info, self.licenses, self.issues, self.format, numbered_ids=self.numbered_ids,
        )


def count(n: int, noun: str, plural: str = "") -> str:
    """``"1 problem"``, ``"2 problems"``; ``plural`` for the irregular nouns (``box``, ``boxes``)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def first_duplicate(values: Iterable):
    """The first value that occurs a second time, or None (one pass with a set)."""
    seen = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    return None


# ---------------------------------------------------------------------------- boxes (numpy)
def convert_boxes(boxes, in_fmt: str, out_fmt: str) -> np.ndarray:
    """:func:`cvpipe.ops.boxes.box_convert` for float64 numpy arrays ``(N, 4)`` -> ``(N, 4)``."""
    arr = np.ascontiguousarray(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    return box_convert(torch.from_numpy(arr), in_fmt, out_fmt).numpy()


BOX_TOLERANCE = 1e-6  # pixels; conversions through normalised coordinates are exact to ~1e-12


def image_sizes(ds: DetectionDataset) -> np.ndarray:
    """``(N, 2)`` float64 width and height of each object's image (0 where unknown)."""
    sizes = np.array([[im.width, im.height] for im in ds.images], dtype=np.float64).reshape(-1, 2)
    return sizes[ds.image_index]


def box_defects(ds: DetectionDataset) -> dict[str, np.ndarray]:
    """``(N,)`` bool masks of what is wrong with each box: ``wrong_order`` (x2 < x1 or
    y2 < y1), ``empty`` (zero width or height), ``outside`` (beyond its image by more than
    :data:`BOX_TOLERANCE` pixels, where the image size is known) and ``nonfinite``."""
    b, sizes = ds.boxes, image_sizes(ds)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    wrong_order = (w < 0) | (h < 0)
    known = (sizes > 0).all(axis=1)
    outside = known & ((b[:, :2] < -BOX_TOLERANCE).any(axis=1) | (b[:, 2:] > sizes + BOX_TOLERANCE).any(axis=1))
    return {"wrong_order": wrong_order, "empty": ~wrong_order & ((w == 0) | (h == 0)), "outside": outside,
            "nonfinite": ~np.isfinite(b).all(axis=1)}


def box_area_np(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy -> ``(N,)`` signed area ``(x2 - x1) * (y2 - y1)`` as files store it."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    with np.errstate(over="ignore", invalid="ignore"):  # absurd boxes give inf; the linter reports them
        return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


# ---------------------------------------------------------------------------- numbers in files
def format_number(value: float, decimals: int = 10) -> str:
    """Shortest text for a coordinate: ``12`` for integral values, otherwise the value rounded
    to ``decimals`` places. Any number written with at most ``decimals`` places reads back to
    the same float, which is what makes conversions round-trip exactly despite the float
    arithmetic in between (``x + w - x`` need not equal ``w`` bit for bit). :func:`round_decimals`
    rounds whole arrays the same way."""
    v = round(float(value), decimals)
    if not np.isfinite(v):
        raise DataError(f"cannot write the non-finite coordinate {v}; fix or drop that box")
    if v == int(v) and abs(v) < 2**53:
        return str(int(v))
    return repr(v)


def round_decimals(values, decimals: int = 10) -> np.ndarray:
    """``round(float(v), decimals)`` of every value, bit for bit, as array operations: the
    rounding :func:`format_number` writes, for writers with many numbers. Any shape -> float64
    of that shape; a non-finite value raises :class:`DataError` as in :func:`format_number`.

    Python returns ``x`` itself when it is integral or its spacing exceeds ``10**-decimals``
    (the rounded decimal is then nearer ``x`` than any other double). Otherwise
    ``y = x * 10**decimals`` is off by at most half its spacing, so away from the midpoints
    between integers ``rint(y)`` is the integer Python's exact decimal rounding picks, and
    dividing it by ``10**decimals`` (both exact) rounds once, to the double nearest that
    decimal, as Python does. The few values near a midpoint take Python's round.
    """
    x = np.asarray(values, dtype=np.float64)
    if not np.isfinite(x).all():
        raise DataError(f"cannot write the non-finite coordinate {x[~np.isfinite(x)][0]}; fix or drop that box")
    scale = 10.0**decimals
    with np.errstate(over="ignore", invalid="ignore"):
        y = x * scale
        kept = (x == np.floor(x)) | (np.spacing(np.abs(x)) > 1 / scale)
        safe = kept | (np.abs(y - np.floor(y) - 0.5) > np.spacing(np.abs(y)) / 2)
        out = np.where(kept, x, np.rint(y) / scale)
    out[~safe] = [round(v, decimals) for v in x[~safe].tolist()]
    return out


def parse_number(text: str, what: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise DataError(f"{what} is not a number: {text!r}") from None
    if not np.isfinite(v):
        raise DataError(f"{what} is not finite: {text!r}")
    return v


def read_text(path: Path, what: str = "text file") -> str:
    """A UTF-8 text file (a leading byte-order mark allowed); unreadable or not UTF-8 is a
    :class:`DataError` naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be read as a UTF-8 {what} ({e})") from None


def progress(items, desc: str, unit: str = "file"):
    """A tqdm bar with an ETA over a long per-file loop, shown only on a terminal."""
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, leave=False, dynamic_ncols=True, disable=None)


def load_json(path: Path):
    """``json.loads`` of a file with the cyclic garbage collector paused: decoding a COCO file
    allocates millions of small containers, and each allocation burst otherwise triggers
    collections that scan all of them again (about a fifth of the decode time)."""
    text = Path(path).read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not an error
    enabled = gc.isenabled()
    gc.disable()
    try:
        return json.loads(text)
    finally:
        if enabled:
            gc.enable()


# ---------------------------------------------------------------------------- paths and images
_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_relpath(name: str, what: str = "file name") -> str:
    """Check a file name taken from an annotation file and return it as a POSIX relative path.

    Refused (:class:`DataError`): empty names, absolute paths (``/x``, ``C:\\x``, ``\\\\host``)
    and any ``..`` component, so no annotation can make cvpipe read or write outside the
    dataset folder. Backslashes are read as separators.
    """
    text = str(name).strip()
    if not text:
        raise DataError(f"{what} is empty")
    posix = text.replace("\\", "/")
    if posix.startswith("/") or _DRIVE.match(posix):
        raise DataError(f"{what} {text!r} is absolute; write it relative to the dataset folder")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DataError(f"{what} {text!r} contains '..'; file names must stay inside the dataset folder")
    if not parts:
        raise DataError(f"{what} {text!r} names no file")
    return str(PurePosixPath(*parts))


def _orientation(image) -> int:
    if image.format == "PNG":
        return 1  # Pillow would decode a PNG to find a late eXIf chunk; PNGs are stored upright
    try:
        return int(image.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block does not make the pixels unusable
        return 1


def read_image_size(path: PathLike, exif: bool = True) -> tuple[int, int]:
    """``(width, height)`` of an image from its header, without decoding the pixels.

    With ``exif`` the EXIF orientation is applied (5-8 swap width and height), giving the
    size of the upright picture; ``exif=False`` gives the stored size. Raises
    :class:`DataError` naming the file when it is missing or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:  # lazy: reads the header only
            width, height = image.size
            if exif and _orientation(image) in (5, 6, 7, 8):
                width, height = height, width
    except FileNotFoundError:
        raise DataError(f"image {path}: file not found") from None
    except Image.DecompressionBombError as e:
        raise DataError(f"image {path}: refused as a decompression bomb ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"image {path}: cannot be read ({e})") from None
    return int(width), int(height)


def size_mismatch(image: ImageInfo) -> Optional[str]:
    """What is wrong when the header of ``image.path`` gives another size than the recorded
    ``width``/``height``; None when they agree or there is nothing to compare (size unknown, no
    file). A file that cannot be read raises :class:`DataError`."""
    if image.width <= 0 or image.height <= 0 or image.path is None or not Path(image.path).is_file():
        return None
    actual = read_image_size(image.path)
    if actual == (image.width, image.height):
        return None
    note = (" (it matches the stored pixels before the EXIF rotation: the annotation was made on the unrotated "
            "image)" if read_image_size(image.path, exif=False) == (image.width, image.height) else "")
    return (f"image {image.file_name}: size {image.width}x{image.height} in the annotation but the file is "
            f"{actual[0]}x{actual[1]}{note}")


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, any letter case of the extension), sorted."""
    if not folder.is_dir():
        return []
    found = []
    for dirpath, _, files in os.walk(folder):
        found.extend(Path(dirpath) / f for f in files if Path(f).suffix.lower() in IMAGE_EXTENSIONS)
    return sorted(found)


def relative_posix(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def output_folder(path: PathLike) -> Path:
    """Create the folder for reports and plots; a path that cannot be one is a :class:`DataError`."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{path}: cannot write the outputs there ({e.strerror or e}); choose another folder") from None
    return path


def fill_image_sizes(ds: DetectionDataset) -> int:
    """Read the header of every image whose width or height is unknown; returns how many were
    filled. Images that cannot be read get an issue and keep size 0."""
    filled = 0
    for im in ds.images:
        if im.width > 0 and im.height > 0:
            continue
        if im.path is None:
            ds.issues.append(Issue(im.source or im.file_name, "image size unknown and no image file to read it from"))
            continue
        try:
            im.width, im.height = read_image_size(im.path)
            filled += 1
        except DataError as e:
            ds.issues.append(Issue(im.source or im.file_name, f"image size unknown: {e}"))
    return filled
