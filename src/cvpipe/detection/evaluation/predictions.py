"""Reading predictions for evaluation, in the three forms detectors write.

* ``coco``: a COCO results JSON, a list of ``{"image_id", "category_id", "bbox": [x, y, w, h],
  "score"}`` (ids are the ground truth's), every value a JSON number: a quoted ``"0.9"`` or a
  ``true`` is refused, as pycocotools would crash on the one and read the other as image id 1.
* ``yolo``: a folder of ``<image stem>.txt`` files with ``cls cx cy w h conf`` lines
  (Ultralytics ``save_txt`` + ``save_conf``), normalised, ``cls`` indexing the ground truth's
  category list.
* ``voc``: a folder of per-class files (``comp4_det_test_<class>.txt`` or ``<class>.txt``)
  with ``<image stem> <score> <xmin> <ymin> <xmax> <ymax>`` lines, 1-based inclusive pixels.

Predictions for an image that is not in the ground truth are an error (as in pycocotools):
evaluating against the wrong split must not go unnoticed.
"""

from __future__ import annotations

from itertools import chain
from pathlib import Path, PurePosixPath
from typing import Optional

import numpy as np

from cvpipe.detection.annotations import DetectionDataset, Detections, convert_boxes, load_json
from cvpipe.detection.names import PREDICTION_FORMATS
from cvpipe.errors import DataError

EXPECTED = {  # what each prediction format is, for messages
    "coco": "COCO predictions are one results .json file, a list of {image_id, category_id, bbox, score}",
    "yolo": "YOLO predictions are a folder of <image>.txt files with `cls cx cy w h conf` lines",
    "voc": "VOC predictions are a folder of per-class files <prefix>_<class>.txt with "
           "`image score xmin ymin xmax ymax` lines",
}


def _image_keys(gt: DetectionDataset) -> tuple[dict, dict]:
    """Maps from a file's path-without-suffix and from its bare stem to the image index."""
    full, bare = {}, {}
    for i, im in enumerate(gt.images):
        stem_path = PurePosixPath(im.file_name).with_suffix("").as_posix()
        full.setdefault(stem_path, i)
        bare.setdefault(PurePosixPath(im.file_name).stem, []).append(i)
    return full, bare


def _lookup(key: str, full: dict, bare: dict, where: str) -> Optional[int]:
    if key in full:
        return full[key]
    hits = bare.get(PurePosixPath(key).name, [])
    if len(hits) > 1:
        raise DataError(f"{where}: image name {key!r} matches several ground-truth images; keep sub-folders in the names")
    return hits[0] if hits else None


def _unknown(path, names: list, gt: Optional[DetectionDataset] = None) -> DataError:
    """Predictions for images the ground truth lacks: which ones, and the likely cause. With
    ``gt`` the names are COCO image ids, and the usual cause is a renumbering."""
    shown = ", ".join(map(repr, names[:5])) + (", ..." if len(names) > 5 else "")
    text = f"{path}: predictions for {len(names)} image{'s' * (len(names) != 1)} not in the ground truth ({shown}); "
    if gt is None:
        return DataError(text + "evaluate against the split they were made on")
    ids = [im.id for im in gt.images]
    return DataError(text + f"the ground truth's image ids run {min(ids)}..{max(ids)}, likely renumbered by a "
                     "conversion (YOLO, txt and plain VOC store no image ids; cvpipe numbers their images 1..N): "
                     "evaluate against the COCO file the predictions were made for, or give them as YOLO or VOC "
                     "txt files, which are matched by file name")


def read_coco_results(path, gt: DetectionDataset) -> Detections:
    path = Path(path)
    try:
        data = load_json(path)
    except (OSError, UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]  # a COCO-style file with scores
    if not isinstance(data, list):
        raise DataError(f"{path}: a COCO results file is a list of {{image_id, category_id, bbox, score}}")
    ids = [im.id for im in gt.images]
    if len(set(ids)) != len(ids):
        raise DataError("the ground truth has repeated image ids (several splits?); evaluate one split")
    index_of = {im.id: i for i, im in enumerate(gt.images)}
    try:  # the fast path: one array per field; a bad entry is then looked for one by one
        image_ids, cats, boxes, scores = ([r[k] for r in data] for k in ("image_id", "category_id", "bbox", "score"))
        # numpy would take "0.9" or true as a number, and true would match image id 1
        if not all(map(_numbers, (image_ids, cats, scores, chain.from_iterable(boxes)))):
            raise TypeError
        distinct = dict.fromkeys(image_ids)
        cats = np.array(cats)
        boxes = np.array(boxes, dtype=np.float64).reshape(len(data), 4)
        scores = np.array(scores, dtype=np.float64)
        if len(data) and (cats.dtype.kind not in "iuf" or np.any(cats != np.round(cats))):
            raise TypeError
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path}: {_first_bad_result(data)}") from None
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        bad = int(np.flatnonzero(~(np.isfinite(boxes).all(axis=1) & np.isfinite(scores)))[0])
        raise DataError(f"{path}: result [{bad}] has a non-finite bbox or score")
    cats = cats.astype(np.int64)
    unknown = [i for i in distinct if i not in index_of]
    if unknown:
        raise _unknown(path, unknown, gt)
    image_index = np.array([index_of[i] for i in image_ids], dtype=np.int64)
    return Detections(image_index, convert_boxes(boxes, "xywh", "xyxy"), scores, cats)


def _numbers(values) -> bool:
    """Whether every value is a JSON number (``int`` or ``float``; ``bool`` is not one here)."""
    return set(map(type, values)) <= {int, float}


def _not(field: str, value, what: str) -> str:
    """``score '0.9' is a string, not a number (write it without quotes)``."""
    if isinstance(value, bool):
        return f"{field} {value!r} is true/false, not {what}"
    if isinstance(value, str):
        try:
            hint = " (write it without quotes)" if field != "image_id" and np.isfinite(float(value)) else ""
        except ValueError:
            hint = ""
        return f"{field} {value!r} is a string, not {what}{hint}"
    return f"{field} {value!r} is not {what}"


def _first_bad_result(data: list) -> str:
    """What is wrong with the first malformed entry of a COCO results list."""
    for i, r in enumerate(data):
        if not isinstance(r, dict):
            return f"result [{i}] is not an object {{image_id, category_id, bbox, score}}"
        missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in r]
        if missing:
            return f"result [{i}] has no {', '.join(map(repr, missing))}"
        if not _numbers([r["image_id"]]):
            return f"result [{i}]: {_not('image_id', r['image_id'], 'an id')}"
        cat = r["category_id"]
        if not _numbers([cat]) or not np.isfinite(cat) or cat != int(cat):
            return f"result [{i}]: {_not('category_id', cat, 'an integer')}"
        bbox = r["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4):
            return f"result [{i}]: bbox {bbox!r} is not [x, y, width, height]"
        bad = [v for v in bbox if not _numbers([v])]
        if bad:
            return f"result [{i}]: bbox {bbox!r} is not [x, y, width, height]: {_not('value', bad[0], 'a number')}"
        if not _numbers([r["score"]]):
            return f"result [{i}]: {_not('score', r['score'], 'a number')}"
    return "every result needs image_id, category_id, bbox [x, y, w, h] and score"


def _read_rows(path: Path, columns: int, first_is_text: bool, hint: str = "") -> tuple[list, np.ndarray, np.ndarray]:
    """(first column of each line, the other columns ``(n, columns - 1)``, 1-based line numbers ``(n,)``);
    ``hint`` follows the message about a line with the wrong number of values."""
    heads, rows, numbers = [], [], []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be read ({e})") from None
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != columns:
            raise DataError(f"{path} line {n}: expected {columns} values, got {len(parts)}{hint}")
        try:
            values = [float(p) for p in parts[1:]]
            head = parts[0] if first_is_text else float(parts[0])
        except ValueError:
            raise DataError(f"{path} line {n}: not numbers: {line.strip()!r}") from None
        heads.append(head)
        rows.append(values)
        numbers.append(n)
    return heads, np.array(rows, dtype=np.float64).reshape(-1, columns - 1), np.array(numbers, dtype=np.int64)


def read_yolo_predictions(folder, gt: DetectionDataset) -> Detections:
    folder = Path(folder)
    full, bare = _image_keys(gt)
    ids = np.array([c.id for c in gt.categories], dtype=np.int64)
    parts, unknown = [], []
    files = sorted(folder.rglob("*.txt"))
    if not files:
        raise DataError(f"{folder}: no .txt prediction files (YOLO: the labels/ folder of a prediction run with "
                        "save_txt and save_conf; for no detections at all use a COCO results file [])")
    for p in files:
        key = p.relative_to(folder).with_suffix("").as_posix()
        i = _lookup(key, full, bare, str(p))
        if i is None:
            unknown.append(key)
            continue
        heads, rows, lines = _read_rows(p, 6, first_is_text=False, hint=(
            " (`cls cx cy w h conf`; a line without its confidence is a label, not a prediction: predict with "
            "save_txt and save_conf)"))
        cls = np.array(heads, dtype=np.float64)
        bad = np.flatnonzero((cls != np.round(cls)) | (cls < 0) | (cls >= len(ids)))
        if len(bad):
            raise DataError(f"{p} line {lines[bad[0]]}: class {heads[bad[0]]:g} is not an index 0..{len(ids) - 1} "
                            "of the ground truth's classes")
        im = gt.images[i]
        if im.width <= 0 or im.height <= 0:
            raise DataError(f"{im.file_name}: image size unknown, needed for normalised YOLO predictions")
        wh = np.array([im.width, im.height, im.width, im.height], dtype=np.float64)
        boxes = convert_boxes(rows[:, :4] * wh, "cxcywh", "xyxy")
        parts.append((np.full(len(rows), i), boxes, rows[:, 4], ids[cls.astype(np.int64)]))
    if unknown:
        raise _unknown(folder, unknown)
    return _concat(parts)


def _class_of_file(stem: str, names: list[str]) -> Optional[str]:
    matches = [n for n in names if stem == n or stem.endswith("_" + n)]
    return max(matches, key=len) if matches else None


def read_voc_predictions(folder, gt: DetectionDataset) -> Detections:
    folder = Path(folder)
    full, bare = _image_keys(gt)
    by_name = {c.name: c.id for c in gt.categories}
    parts, unknown = [], []
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise DataError(f"{folder}: no .txt files ({EXPECTED['voc']})")
    for p in files:
        name = _class_of_file(p.stem, list(by_name))
        if name is None:
            raise DataError(f"{p}: the file name names no ground-truth class (expected <prefix>_<class>.txt)")
        heads, rows, _ = _read_rows(p, 6, first_is_text=True)
        index = []
        for h in heads:
            i = _lookup(h, full, bare, str(p))
            if i is None:
                unknown.append(h)
            index.append(-1 if i is None else i)
        xyxy = rows[:, 1:5] - np.array([1.0, 1.0, 0.0, 0.0])  # 1-based inclusive -> continuous
        parts.append((np.array(index, dtype=np.int64), xyxy, rows[:, 0], np.full(len(rows), by_name[name])))
    if unknown:
        raise _unknown(folder, list(dict.fromkeys(unknown)))
    return _concat(parts)


def _concat(parts) -> Detections:
    if not parts:
        return Detections(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
    return Detections(*(np.concatenate([p[k] for p in parts]) for k in range(4)))


def detect_prediction_format(path, gt: DetectionDataset) -> str:
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        raise DataError(f"{path}: predictions are a COCO results .json or a folder of .txt files")
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    stems = [p.stem for p in path.glob("*.txt")]
    names = gt.class_names
    if stems and all(_class_of_file(s, names) for s in stems):
        return "voc"
    return "yolo"


def read_predictions(path, gt: DetectionDataset, fmt: Optional[str] = None) -> Detections:
    """Read predictions for the images of ``gt``; ``fmt`` is detected when None."""
    fmt = fmt or detect_prediction_format(path, gt)
    if fmt not in PREDICTION_FORMATS:
        raise DataError(f"unknown prediction format {fmt!r}; expected one of {', '.join(PREDICTION_FORMATS)}")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir() == (fmt == "coco"):  # COCO is a file, the others are folders
        other = "yolo or voc" if fmt == "coco" else "coco" if path.suffix.lower() == ".json" else ""
        raise DataError(f"{path}: {EXPECTED[fmt]}, not a {'folder' if path.is_dir() else 'file'}"
                        + (f"; use --pred-format {other}" if other else ""))
    reader = {"coco": read_coco_results, "yolo": read_yolo_predictions, "voc": read_voc_predictions}[fmt]
    return reader(path, gt)
