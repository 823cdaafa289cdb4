"""``cvpipe check-detection``: find what is wrong with a detection dataset before training on it.

Every finding names the file and, for a box, the object's index in that file (the line
number for the text formats). Errors are things that will silently corrupt training or
evaluation (a box outside its image, a label outside the class list, a missing image);
warnings are things worth a look (images without objects, heavy class imbalance). The
checks over boxes are array operations over all objects at once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from cvpipe.detection.annotations import (
    DetectionDataset,
    Issue,
    box_defects,
    count,
    image_sizes,
    output_folder,
    progress,
    size_mismatch,
)
from cvpipe.detection.formats import read_dataset
from cvpipe.errors import DataError


@dataclass
class LintReport:
    """Findings, statistics and plot files of :func:`lint`."""

    path: str
    format: str
    findings: list[Issue] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [f for f in self.findings if f.level != "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def format_text(self, limit: int = 20) -> str:
        """Findings grouped by level (at most ``limit`` lines per kind of problem), then the
        statistics."""
        lines = []
        for level, items in (("error", self.errors), ("warning", self.warnings)):
            shown: Counter = Counter()
            hidden: Counter = Counter()
            for f in items:
                kind = _kind(f.message)
                if shown[kind] < limit:
                    lines.append(f"{level}: {f}")
                    shown[kind] += 1
                else:
                    hidden[kind] += 1
            for kind, n in hidden.items():
                lines.append(f"{level}: ... and {n} more like '{kind}'")
        s = self.stats
        lines.append(
            f"{self.path} ({self.format}): {count(s.get('images', 0), 'image')}, {count(s.get('objects', 0), 'object')} "
            f"({s.get('ignored', 0)} ignored), {count(s.get('classes', 0), 'class', 'classes')}, "
            f"{count(s.get('images_without_objects', 0), 'image')} without objects"
        )
        if s.get("objects_per_class"):
            per = ", ".join(f"{k}: {v}" for k, v in s["objects_per_class"].items())
            lines.append(f"objects per class: {per}")
        if s.get("box_width"):
            lines.append("box width px (min/median/max): {:.1f} / {:.1f} / {:.1f}; height: {:.1f} / {:.1f} / {:.1f}".format(
                *s["box_width"], *s["box_height"]))
            lines.append("COCO size ranges: {small} small, {medium} medium, {large} large".format(**s["size_ranges"]))
        lines.append(f"{count(len(self.errors), 'error')}, {count(len(self.warnings), 'warning')}")
        for p in self.plots:
            lines.append(f"plot: {p}")
        return "\n".join(lines)


def _kind(message: str) -> str:
    """The message without numbers, to group similar findings."""
    return "".join("#" if ch.isdigit() else ch for ch in message.split(";")[0])[:60]


def _where(ds: DetectionDataset, j: int) -> tuple[str, Optional[int], str]:
    """(file, object index, prefix) for object ``j``; text formats name the line instead."""
    im = ds.images[ds.image_index[j]]
    if ds.format in ("yolo", "txt"):
        return im.source or im.file_name, None, f"line {ds.object_index[j]}: "
    return im.source or im.file_name, int(ds.object_index[j]), ""


def _box_text(ds: DetectionDataset, box: np.ndarray) -> str:
    """The box as its file writes it: VOC 1-based corners, COCO [x, y, w, h], else pixel xyxy."""
    x1, y1, x2, y2 = box
    if ds.format == "voc":
        values, label = (x1 + 1, y1 + 1, x2, y2), "bndbox"
    elif ds.format == "coco":
        values, label = (x1, y1, x2 - x1, y2 - y1), "bbox"
    else:
        values, label = (x1, y1, x2, y2), "box x1 y1 x2 y2"
    return f"{label} [{', '.join(f'{v:.6g}' for v in values)}]"


def _box_findings(ds: DetectionDataset) -> list[Issue]:
    out: list[Issue] = []
    if ds.num_objects == 0:
        return out
    b, sizes = ds.boxes, image_sizes(ds)
    yolo = ds.format == "yolo"
    defects = box_defects(ds)
    wrong_order, zero, outside, nonfinite = (defects[k] for k in ("wrong_order", "empty", "outside", "nonfinite"))
    for j in np.flatnonzero(wrong_order | zero | outside):
        file, index, prefix = _where(ds, j)
        box = _box_text(ds, b[j])
        if wrong_order[j]:
            what = {"voc": "xmin > xmax or ymin > ymax: corners in the wrong order",
                    "coco": "negative width or height"}.get(ds.format, "negative width or height (wrong column order?)")
            out.append(Issue(file, f"{prefix}{box}: {what}", index))
        elif zero[j]:
            out.append(Issue(file, f"{prefix}{box}: zero width or height", index))
        if outside[j]:
            W, H = sizes[j]
            if yolo:
                norm = b[j] / np.array([W, H, W, H])
                msg = "normalised coordinates outside [0, 1] (x1 y1 x2 y2 = {})".format(", ".join(f"{v:.4g}" for v in norm))
            elif ds.format == "voc":
                msg = f"{box} outside the {W:.0f}x{H:.0f} image (VOC is 1-based: xmin >= 1, xmax <= width)"
            else:
                msg = f"{box} outside the {W:.0f}x{H:.0f} image"
            out.append(Issue(file, prefix + msg, index))
    for j in np.flatnonzero(nonfinite):
        file, index, prefix = _where(ds, j)
        out.append(Issue(file, f"{prefix}box has a non-finite coordinate", index))

    # exact duplicates: same image, class and box (a double-click in the labelling tool)
    key = np.column_stack([ds.image_index, ds.category_id, b]).astype(np.float64)
    _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
    for j in first[counts > 1]:
        file, index, prefix = _where(ds, j)
        out.append(Issue(file, f"{prefix}box is repeated exactly in the same image", index, "warning"))
    return out


def _image_findings(ds: DetectionDataset, check_files: bool) -> list[Issue]:
    out: list[Issue] = []
    counts = ds.objects_per_image()
    for i, im in enumerate(progress(ds.images, "checking images", unit="image")):
        where = im.source or im.file_name
        if counts[i] == 0:
            out.append(Issue(where, f"image {im.file_name} has no objects", level="warning"))
        # YOLO and txt annotations store no size: it comes from the image, whose absence the reader reports
        if ds.format not in ("yolo", "txt") and (im.width <= 0 or im.height <= 0):
            out.append(Issue(where, f"image {im.file_name}: size missing from the annotation"))
        if check_files and im.path is not None and im.path.is_file() and im.width > 0 and im.height > 0 and ds.format != "yolo":
            try:
                mismatch = size_mismatch(im)
            except DataError as e:
                mismatch = str(e)
            if mismatch:
                out.append(Issue(where, mismatch))
        elif check_files and im.path is not None and not im.path.is_file() and ds.format in ("coco",):
            out.append(Issue(where, f"image file {im.file_name} is missing (annotation without image)"))
    by_split: dict = {}
    for im in ds.images:
        by_split.setdefault(im.split, []).append(im)
    for split, ims in by_split.items():
        for what, values in (("image id", [im.id for im in ims]), ("file name", [im.file_name for im in ims])):
            seen = Counter(values)
            for v, n in seen.items():
                if n > 1 and not (what == "image id" and ds.format != "coco"):
                    out.append(Issue(ims[0].source or str(split), f"duplicate {what} {v!r} ({n} images)"))
    return out


def _class_findings(ds: DetectionDataset, counts: dict, imbalance: float, where: str) -> list[Issue]:
    out: list[Issue] = []
    ids, names = [c.id for c in ds.categories], ds.class_names
    for what, values in (("category id", ids), ("category name", names)):
        for v, n in Counter(values).items():
            if n > 1 and ds.format != "coco":  # the COCO reader reports these, naming the file and entry
                out.append(Issue(where, f"duplicate {what} {v!r} in the class list"))
    present = {k: v for k, v in counts.items() if v > 0}
    for name, n in counts.items():
        if n == 0:
            out.append(Issue(where, f"class {name!r} has no (non-ignored) objects", level="warning"))
    if len(present) >= 2:
        most = max(present, key=present.get)
        least = min(present, key=present.get)
        ratio = present[most] / present[least]
        if ratio > imbalance:
            out.append(Issue(where, f"heavy class imbalance: {most!r} has {present[most]} objects, {least!r} "
                                    f"{present[least]} (ratio {ratio:.1f} > {imbalance:g})", level="warning"))
    return out


def dataset_statistics(ds: DetectionDataset) -> dict:
    """Counts and box-size summaries (over non-ignored objects where it matters)."""
    regular = ~ds.ignore
    idx = ds.category_index()
    per_class = {c.name: int(np.sum((idx == k) & regular)) for k, c in enumerate(ds.categories)}
    b = ds.boxes[regular]
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    area = ds.area[regular]
    stats = {
        "images": len(ds.images),
        "objects": ds.num_objects,
        "ignored": int(ds.ignore.sum()),
        "classes": len(ds.categories),
        "splits": dict(Counter(im.split or "(none)" for im in ds.images)),
        "objects_per_class": per_class,
        "images_without_objects": int(np.sum(ds.objects_per_image() == 0)),
        "boxes_per_image_mean": float(ds.num_objects / max(len(ds.images), 1)),
        "boxes_per_image_max": int(ds.objects_per_image().max()) if len(ds.images) else 0,
    }
    if len(b):
        stats["box_width"] = [float(np.min(w)), float(np.median(w)), float(np.max(w))]
        stats["box_height"] = [float(np.min(h)), float(np.median(h)), float(np.max(h))]
        stats["size_ranges"] = {  # COCO's area ranges
            "small": int(np.sum(area < 32**2)),
            "medium": int(np.sum((area >= 32**2) & (area < 96**2))),
            "large": int(np.sum(area >= 96**2)),
        }
    return stats


def lint(
    dataset,
    fmt: Optional[str] = None,
    *,
    classes=None,
    image_root=None,
    out_dir=None,
    imbalance: float = 10.0,
    check_files: bool = True,
) -> LintReport:
    """Check a detection dataset.

    Args:
        dataset: a dataset path (read with :func:`read_dataset`) or a :class:`DetectionDataset`.
        fmt, classes, image_root: passed to :func:`read_dataset`.
        out_dir: where to write the PNG plots (none when None).
        imbalance: warn when the most frequent class has more than this many times the
            objects of the least frequent one.
        check_files: compare recorded image sizes with the image headers.

    Returns:
        A :class:`LintReport`; ``report.ok`` is False when any error was found.
    """
    if out_dir is not None:
        out_dir = output_folder(out_dir)  # before the work: a bad path fails fast
    ds = dataset if isinstance(dataset, DetectionDataset) else read_dataset(dataset, fmt, classes=classes,
                                                                               image_root=image_root)
    findings = list(ds.issues) + _box_findings(ds) + _image_findings(ds, check_files)
    stats = dataset_statistics(ds)
    name = "dataset" if isinstance(dataset, DetectionDataset) else str(dataset)
    findings += _class_findings(ds, stats["objects_per_class"], imbalance, name)
    report = LintReport(name, ds.format, findings, stats)
    if out_dir is not None:
        from cvpipe.detection.plots import plot_dataset_statistics

        report.plots = plot_dataset_statistics(ds, out_dir)
    return report
