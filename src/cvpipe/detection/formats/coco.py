"""COCO JSON: ``images``, ``annotations`` (``bbox`` = top-left x, y, width, height), ``categories``
with any integer ids, and the ``info``/``licenses`` blocks.

Layout written (and found when reading a folder)::

    DST/annotations/instances_<split>.json   DST/images/<split>/<file_name>
    DST/annotations/instances.json           DST/images/<file_name>          (no splits)

Roboflow's export (``<split>/_annotations.coco.json`` beside the split's images) is read as
one split per folder. A single JSON file can also be read; its images are looked for in
``image_root`` or, in order, ``<root>/images/<split>``, ``<root>/<split>``, ``<root>/images``
and the JSON's folder (``<root>`` is the folder holding ``annotations/``).

``iscrowd`` is the ignore flag both ways (as pycocotools reads it; an ``ignore`` key is kept
as an extra field but, as in pycocotools, does not mark the object). Unknown keys on images
and annotations (``segmentation``, ``license``, ...) are kept and written back. An annotation id
used twice in a file keeps it on its first annotation; the repeats get new ids after the
file's largest, with one warning for the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from cvpipe.detection.annotations import (
    Category,
    DatasetBuilder,
    DetectionDataset,
    ImageInfo,
    Issue,
    NoAnnotationFiles,
    convert_boxes,
    first_duplicate,
    load_json,
    progress,
    round_decimals,
    safe_relpath,
)
from cvpipe.errors import DataError

_IMAGE_KEYS = {"id", "file_name", "width", "height"}
_ANN_KEYS = {"id", "image_id", "category_id", "bbox", "area", "iscrowd"}


ROBOFLOW_NAME = "_annotations.coco.json"  # Roboflow's export: <split>/_annotations.coco.json beside the images


def split_of(json_path: Path) -> str:
    """``instances_val2017.json`` -> ``val2017``; Roboflow's ``valid/_annotations.coco.json`` ->
    ``valid``; ``instances.json`` or another name -> ``""``."""
    stem = json_path.stem
    if json_path.name == ROBOFLOW_NAME:
        return json_path.parent.name
    return stem[len("instances_"):] if stem.startswith("instances_") else ""


def find_annotation_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    folder = path / "annotations" if (path / "annotations").is_dir() else path
    files = (sorted(folder.glob("instances*.json")) or sorted(folder.glob("*.json"))
             or sorted(folder.glob(f"*/{ROBOFLOW_NAME}")))
    if not files:
        raise NoAnnotationFiles(f"{path}: no COCO JSON found (expected annotations/instances_<split>.json)")
    return files


def _image_folder(json_path: Path, split: str, image_root: Optional[Path]) -> Path:
    if image_root is not None:
        return Path(image_root)
    root = json_path.parent.parent if json_path.parent.name == "annotations" else json_path.parent
    candidates = [root / "images" / split, root / split] if split else []
    candidates += [root / "images", json_path.parent]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise DataError(f"{what} is not a finite number: {value!r}")
    return float(value)


def _is_integer(value) -> bool:
    """A JSON integer: true/false are bools to JSON even though Python counts them as 1/0."""
    return isinstance(value, int) and not isinstance(value, bool)


def _integer_id(value, what: str) -> int:
    """An image, annotation or category id: a JSON integer that fits the int64 arrays ids are
    kept in; otherwise :class:`DataError`."""
    if not _is_integer(value):
        raise DataError(f"{what} {value!r} is not an integer")
    if not -(2**63) <= value < 2**63:
        raise DataError(f"{what} {value} does not fit in 64 bits")
    return value


def _hashable(value) -> bool:
    """JSON values usable as ids: not lists or objects (which would raise in a dict lookup)."""
    return not isinstance(value, (list, dict))


def _dimension(image: dict, key: str) -> int:
    """``width``/``height`` of an image entry; 0 when absent or null (read from the file later)."""
    value = image.get(key)
    if value is None:
        return 0
    try:
        number = float(value) if isinstance(value, str) else _number(value, key)
        if not np.isfinite(number):
            raise ValueError
    except (DataError, ValueError):
        raise DataError(f"{key} {value!r} is not a number") from None
    return int(number)


def read_coco(path, image_root=None, classes=None) -> DetectionDataset:
    """Read a COCO JSON file, or every ``instances*.json`` of a COCO folder (one split each).

    A file that is not valid JSON or lacks ``images``/``annotations``/``categories`` is
    skipped with one issue; a bad image or annotation entry is skipped with one issue naming
    its position. ``classes`` is ignored (COCO files carry their categories).
    """
    path = Path(path)
    b = DatasetBuilder(format="coco")
    cat_by_id: dict[int, Category] = {}
    for json_path in find_annotation_files(path):
        _read_file(json_path, b, cat_by_id, image_root)
    b.categories = list(cat_by_id.values())
    return b.build()


def _read_file(json_path: Path, b: DatasetBuilder, cat_by_id: dict, image_root) -> None:
    name = str(json_path)
    try:
        data = load_json(json_path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        b.issue(name, f"not valid JSON ({e}); file skipped")
        return
    lacking = [k for k in ("images", "annotations", "categories") if not isinstance(data, dict) or not isinstance(data.get(k), list)]
    if lacking:
        what = ("is a list, not an object (a COCO results file?)" if isinstance(data, list) else
                f"has no list {' or '.join(map(repr, lacking))}")
        b.issue(name, f"not a COCO annotation file: {what}; it needs lists 'images', 'annotations' and 'categories'; "
                      "file skipped")
        return
    split = split_of(json_path)
    folder = _image_folder(json_path, split, image_root)
    info, licenses = data.get("info"), data.get("licenses")
    if info is not None and not isinstance(info, dict):
        b.issue(name, f"'info' is {type(info).__name__}, not an object; not kept", level="warning")
        info = None
    if licenses is not None and not isinstance(licenses, list):
        b.issue(name, f"'licenses' is {type(licenses).__name__}, not a list; not kept", level="warning")
        licenses = None
    b.info = b.info or dict(info or {})
    b.licenses = b.licenses or list(licenses or [])

    id_of_name = {c.name: c.id for c in reversed(cat_by_id.values())}  # the first id of each name
    for i, c in enumerate(data["categories"]):
        try:
            cid, cname = _integer_id(c["id"], "id"), str(c["name"])
        except (KeyError, TypeError, DataError):
            b.issue(name, f"categories[{i}] needs an integer 'id' and a 'name'; skipped")
            continue
        known = cat_by_id.get(cid)
        if known is not None and known.name != cname:
            b.issue(name, f"category id {cid} is {cname!r} here but {known.name!r} elsewhere (duplicate id)")
            continue
        if known is None and cname in id_of_name:  # said once, where the second id appears, not again per split file
            b.issue(name, f"categories[{i}]: category {cid} has the name {cname!r} of category {id_of_name[cname]}: "
                          "VOC files (which store names) and per-class results cannot tell them apart; rename one",
                    level="warning")
        id_of_name.setdefault(cname, cid)
        cat_by_id.setdefault(cid, Category(cid, cname, str(c.get("supercategory", ""))))

    image_by_id: dict[int, int] = {}
    skipped_ids: set = set()  # their annotations are skipped without a message of their own
    for i, im in enumerate(data["images"]):
        iid = im.get("id") if isinstance(im, dict) else None
        if _hashable(iid) and iid not in image_by_id:
            skipped_ids.add(iid)
        try:
            if not isinstance(im, dict):
                raise DataError("not an object")
            iid = _integer_id(im["id"], "id")
            file_name = safe_relpath(im["file_name"])
            width, height = _dimension(im, "width"), _dimension(im, "height")
        except KeyError as e:
            b.issue(name, f"images[{i}] has no {e}; skipped with its annotations")
            continue
        except (DataError, TypeError, ValueError) as e:
            b.issue(name, f"images[{i}]: {e}; skipped with its annotations")
            continue
        if iid in image_by_id:
            b.issue(name, f"images[{i}]: duplicate image id {iid}; skipped")
            continue
        skipped_ids.discard(iid)
        extra = {k: v for k, v in im.items() if k not in _IMAGE_KEYS}
        image_by_id[iid] = b.add_image(ImageInfo(file_name, width, height, iid, split, folder / file_name, name, extra))

    pending = []  # boxes are converted together at the end: one array operation, not one per object
    for i, a in enumerate(data["annotations"]):
        try:
            if not isinstance(a, dict):
                raise DataError("not an object")
            missing = [k for k in ("image_id", "category_id", "bbox") if k not in a]
            if missing:
                raise DataError(f"has no {', '.join(map(repr, missing))}")
            if _hashable(a["image_id"]) and a["image_id"] in skipped_ids and a["image_id"] not in image_by_id:
                continue  # its image was skipped, and said so
            if not _is_integer(a["image_id"]) or a["image_id"] not in image_by_id:
                raise DataError(f"image_id {a.get('image_id')!r} is not in 'images' (annotation without image)")
            cid = a.get("category_id")
            if not _is_integer(cid) or cid not in cat_by_id:  # true would match id 1, "3" is not 3
                raise DataError(f"category_id {cid!r} is not in 'categories' (label outside the class list)")
            bbox = a.get("bbox")
            if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
                raise DataError(f"bbox {bbox!r} is not [x, y, width, height]")
            xywh = [_number(v, "bbox value") for v in bbox]
            area = _number(a["area"], "area") if "area" in a else None
            ann_id = _integer_id(a.get("id", -1), "id")
        except DataError as e:
            b.issue(name, f"annotations[{i}]: {e}; skipped")
            continue
        extra = {k: v for k, v in a.items() if k not in _ANN_KEYS}
        pending.append((xywh, image_by_id[a["image_id"]], cid, bool(a.get("iscrowd", 0)), area, ann_id, i, extra))
    boxes = convert_boxes([p[0] for p in pending], "xywh", "xyxy")
    finite = np.isfinite(boxes).all(axis=1)  # x + w can overflow to inf
    for xywh, *_, i, _ in (p for p, ok in zip(pending, finite) if not ok):
        b.issue(name, f"annotations[{i}]: bbox {xywh!r} overflows (x + width is not finite); skipped")
    pending = [p for p, ok in zip(pending, finite) if ok]
    ann_ids, note = _renumber_repeats(np.array([p[5] for p in pending], dtype=np.int64), [p[6] for p in pending])
    if note:
        b.issue(name, note, level="warning")
    for box, ann_id, (_, image, cid, crowd, area, _, i, extra) in zip(boxes[finite], ann_ids.tolist(), pending):
        b.add_object(image, box, cid, crowd, area, ann_id, i, extra)


def _renumber_repeats(ids: np.ndarray, index: list[int]) -> tuple[np.ndarray, Optional[str]]:
    """Give each repeat of an annotation id a new one, after the largest id read from the file.

    ``ids`` are the ``(N,)`` int64 ids of a file's annotations (``-1``: none, never a repeat),
    ``index`` their positions in its ``annotations`` list. The first annotation with an id
    keeps it. Returns the ``(N,)`` ids and a message saying what was renumbered (None when
    every id is distinct), so that one line reports them all.
    """
    _, first = np.unique(ids, return_index=True)
    repeat = np.ones(len(ids), dtype=bool)
    repeat[first] = False
    repeat &= ids != -1
    later = np.flatnonzero(repeat)
    if len(later) == 0:
        return ids, None
    start, n = int(ids.max()) + 1, len(later)
    new = ids.copy()
    new[later] = np.arange(start, start + n)
    example, distinct = ids[later[0]], len(np.unique(ids[later]))
    where = f"annotations[{index[np.argmax(ids == example)]}] and annotations[{index[later[0]]}]"
    what = (f"annotation id {example} is used more than once ({where})" if distinct == 1 else
            f"{distinct} annotation ids are used more than once (e.g. {example}: {where})")
    given = f"the later one gets the new id {start}" if n == 1 else f"the {n} later ones get new ids {start}..{start + n - 1}"
    return new, (f"{what}; {given}, the first of each keeps its id; fix the file for other tools (pycocotools "
                 "mixes up annotations that share an id)")


def _coco_json(ds: DetectionDataset, image_ids: np.ndarray, ann_ids: np.ndarray, images: list[int],
               by_image: list[np.ndarray]) -> dict:
    objs = np.concatenate([by_image[i] for i in images]) if images else np.zeros(0, np.int64)
    xywh = convert_boxes(ds.boxes[objs], "xyxy", "xywh")
    out_images = []
    for i in images:
        im = ds.images[i]
        out_images.append({"id": int(image_ids[i]), "file_name": im.file_name, "width": int(im.width),
                           "height": int(im.height), **im.extra})
    columns = zip(ann_ids[objs].tolist(), image_ids[ds.image_index[objs]].tolist(), ds.category_id[objs].tolist(),
                  _json_numbers(xywh), _json_numbers(ds.area[objs]), ds.ignore[objs].astype(int).tolist(),
                  [ds.object_extra[j] for j in objs])
    annotations = [{"id": a, "image_id": i, "category_id": c, "bbox": b, "area": area, "iscrowd": crowd, **extra}
                   for a, i, c, b, area, crowd, extra in columns]
    categories = [{"id": c.id, "name": c.name, "supercategory": c.supercategory} for c in ds.categories]
    info = ds.info or {"description": "written by cvpipe", "version": "1.0"}
    return {"info": info, "licenses": ds.licenses, "images": out_images, "annotations": annotations,
            "categories": categories}


def _json_numbers(values: np.ndarray) -> list:
    """The JSON values of :func:`format_number`'s text, as nested lists of ``values``' shape:
    ``int`` for integral values, else the ``float`` rounded to 10 decimals. Array operations
    (a Python call per number took seconds at COCO's sizes)."""
    rounded = round_decimals(values)
    out = rounded.astype(object)
    integral = (rounded == np.floor(rounded)) & (np.abs(rounded) < 2**53)
    out[integral] = rounded[integral].astype(np.int64).astype(object)
    return out.tolist()


def _unique_or_renumbered(ids: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Keep stored ids when all are present and unique, else number 1..N (COCO ids start at 1)."""
    if len(ids) and valid.all() and len(np.unique(ids)) == len(ids):
        return ids
    return np.arange(1, len(ids) + 1, dtype=np.int64)


def write_coco(ds: DetectionDataset, dst, copy_image) -> list[Issue]:
    """Write one ``annotations/instances[_<split>].json`` per split and place the images.

    ``copy_image(info, target_path)`` copies/links one image (see :mod:`..formats`).
    Image sizes must be known (0 is written as is otherwise; the linter flags it).
    """
    dst = Path(dst)
    issues: list[Issue] = []
    (dst / "annotations").mkdir(parents=True, exist_ok=True)
    image_ids = np.array([im.id for im in ds.images], dtype=np.int64)
    ann_ids = _unique_or_renumbered(ds.annotation_id, ds.annotation_id >= 0)
    by_image = ds.objects_by_image()
    for split in ds.splits:
        members = [i for i, im in enumerate(ds.images) if im.split == split]
        ids = image_ids[members]
        if len(np.unique(ids)) != len(ids):  # ids collide inside this split: renumber it
            image_ids[members] = np.arange(1, len(members) + 1)
        json_name = f"instances_{split}.json" if split else "instances.json"
        folder = dst / "images" / split if split else dst / "images"
        names = [ds.images[i].file_name for i in members]
        dup = first_duplicate(names)
        if dup is not None:
            raise DataError(f"split {split or '(none)'}: file name {dup!r} is used by several images")
        for i in progress(members, f"copying images {split}".strip(), unit="image"):
            issues.extend(copy_image(ds.images[i], folder / ds.images[i].file_name))
        data = _coco_json(ds, image_ids, ann_ids, members, by_image)
        (dst / "annotations" / json_name).write_text(json.dumps(data), encoding="utf-8")
    return issues
