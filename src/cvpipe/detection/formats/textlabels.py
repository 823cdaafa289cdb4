"""What YOLO and the notes' txt format share: one text file per image, one object per line
``cls a b c d`` with a 0-based class index, and a sidecar file for ignored objects.

Neither format has a ``difficult``/``crowd`` flag, and training tools read every line of a
label file as a positive, so ignored objects are written to a parallel file under
``<labels folder>_ignore/`` (e.g. ``labels_ignore/train/x.txt``); the label file itself holds
only the regular objects, as the notes' VOC -> YOLO converter does when it drops difficult
boxes. cvpipe reads both back, so the flag survives every conversion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvpipe.detection.annotations import (
    Category,
    DatasetBuilder,
    DetectionDataset,
    format_number,
)


def parse_label_file(path: Path, rel: str, b: DatasetBuilder, columns: int = 5,
                     polygons: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read ``cls v1 .. v{columns-1}`` lines.

    With ``polygons`` (YOLO), a line ``cls x1 y1 x2 y2 x3 y3 ...`` (three or more points, as
    Ultralytics segmentation labels) stands for the box around its points, ``cx cy w h``, as
    Ultralytics reads such labels for detection.

    Returns ``(line_numbers (n,), class_index (n,), values (n, columns - 1))``. A line with the
    wrong number of values, a non-integer class or a non-finite number is skipped with one
    issue naming its line (1-based). An unreadable file gives one issue and nothing.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not an error
    except (OSError, UnicodeDecodeError) as e:
        b.issue(rel, f"cannot be read ({e}); file skipped")
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, columns - 1))
    lines, classes, values = [], [], []
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        polygon = polygons and len(parts) >= 7 and len(parts) % 2 == 1
        if len(parts) != columns and not polygon:
            also = " or a polygon: class and x y of 3 or more points" if polygons else ""
            b.issue(rel, f"line {n}: expected {columns} values (class and {columns - 1} numbers{also}), "
                         f"got {len(parts)}; skipped")
            continue
        try:
            cls_value = float(parts[0])
            nums = [float(p) for p in parts[1:]]
        except ValueError:
            b.issue(rel, f"line {n}: not numbers: {line.strip()!r}; skipped")
            continue
        if not np.isfinite(cls_value) or cls_value != int(cls_value):
            b.issue(rel, f"line {n}: class {parts[0]!r} is not an integer index; skipped")
            continue
        if not all(np.isfinite(nums)):
            b.issue(rel, f"line {n}: non-finite value; skipped")
            continue
        if polygon:
            points = np.array(nums).reshape(-1, 2)
            (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0)
            nums = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        lines.append(n)
        classes.append(int(cls_value))
        values.append(nums)
    return (np.array(lines, np.int64), np.array(classes, np.int64),
            np.array(values, np.float64).reshape(-1, columns - 1))


def add_label_objects(b: DatasetBuilder, image: int, rel: str, lines, classes, boxes, ignore: bool) -> None:
    """Add parsed objects, mapping class indices to ``b.categories`` (out of range -> issue)."""
    for n, c, box in zip(lines, classes, boxes):
        if not 0 <= c < len(b.categories):
            b.issue(rel, f"line {n}: class index {c} is outside the class list (0..{len(b.categories) - 1}); skipped")
            continue
        if not np.isfinite(box).all():
            b.issue(rel, f"line {n}: coordinates too large (the pixel box is not finite); skipped")
            continue
        b.add_object(image, box, b.categories[c].id, ignore, None, -1, int(n))


def ignore_path(label_path: Path, labels_dir_name: str) -> Path:
    """The sidecar for ignored objects: the ``labels_dir_name`` component becomes
    ``<labels_dir_name>_ignore`` (the last such component, as label paths are derived)."""
    parts = list(label_path.parts)
    for k in range(len(parts) - 1, -1, -1):
        if parts[k] == labels_dir_name:
            parts[k] = f"{labels_dir_name}_ignore"
            return Path(*parts)
    return label_path.with_name(label_path.stem + ".ignore.txt")


def default_categories(count: int) -> list[Category]:
    """Names ``"0".."K-1"`` (ids 1..K) when a dataset comes with no class names."""
    return [Category(i + 1, str(i)) for i in range(count)]


def write_label_files(ds: DetectionDataset, objs: np.ndarray, rows: np.ndarray, label_path: Path,
                      labels_dir_name: str, decimals: int) -> None:
    """Write the objects ``objs`` of one image (values ``rows`` ``(n, 4)``) as ``cls v v v v``
    lines: regular ones to ``label_path``, ignored ones to the sidecar. The label file is
    written even when empty (an image without objects is then explicit)."""
    index_of = {c.id: k for k, c in enumerate(ds.categories)}
    regular, ignored = [], []
    for j, row in zip(objs, rows):
        line = " ".join([str(index_of[int(ds.category_id[j])])] + [format_number(v, decimals) for v in row])
        (ignored if ds.ignore[j] else regular).append(line + "\n")
    label_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.write_text("".join(regular), encoding="utf-8")
    if ignored:
        side = ignore_path(label_path, labels_dir_name)
        side.parent.mkdir(parents=True, exist_ok=True)
        side.write_text("".join(ignored), encoding="utf-8")
