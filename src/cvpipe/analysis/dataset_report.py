"""Dataset report: what is in a dataset before a minute is spent training on it.

One pass over every file (thread pool, progress bar with ETA on a terminal) reads its bytes
once to hash them and to decode them, and then writes to ``out_dir``:

- ``class_counts.png``: images per class and split;
- ``image_sizes.png``: histograms of widths and heights, and width against height;
- ``samples_per_class.png``: a few images of every class (the first 40 classes);
- ``summary.json`` and ``summary.md``: counts, sizes, pixel formats, duplicate images (same
  content hash; groups that straddle splits leak evaluation data into training) and every
  unreadable or unusable file with the reason.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torchvision.transforms import v2
from tqdm.auto import tqdm

from cvpipe.config import Config, load_config
from cvpipe.data.datasets import SPLITS, build_splits
from cvpipe.data.image_io import ImageInfo, inspect_image, read_image
from cvpipe.errors import ConfigError
from cvpipe.viz import new_figure, save_figure
from cvpipe.utils import can_draw_bar, file_threads

MAX_GRID_CLASSES = 40
THUMBNAIL_SIDE = 128
SPLIT_COLOURS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}


def dataset_report(cfg_or_path: Union[Config, str, Path], out_dir: Union[str, Path], samples_per_class: int = 6) -> dict:
    """Analyse a dataset and write PNG plots plus ``summary.json``/``summary.md`` to ``out_dir``.

    Args:
        cfg_or_path: a :class:`Config`; a folder of images (its layout detected); or a YAML
            config / preset name.
        out_dir: created if needed.
        samples_per_class: images per row of the sample grid.

    Returns:
        The summary (the content of ``summary.json``).
    """
    cfg = _as_config(cfg_or_path)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"report folder {out_dir}: is a file; give a folder to write the report in")
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = build_splits(cfg.data, cfg.model.in_chans, check=False)
    members = [(name, ds) for name, ds in zip(SPLITS, (splits.train, splits.val, splits.test)) if ds is not None]

    paths = sorted({str(p) for _, ds in members for p in ds.paths})
    scans = dict(zip(paths, _scan_files(paths)))
    readable = {p for p, s in scans.items() if s["problem"] is None}
    unreadable = sorted(splits.skipped + [(p, s["problem"]) for p, s in scans.items() if s["problem"] is not None])

    counts = {name: _class_counts(ds, readable) for name, ds in members}
    duplicates, leaks = _duplicates(scans, members)
    widths = [scans[p]["width"] for p in paths if p in readable]
    heights = [scans[p]["height"] for p in paths if p in readable]

    files = {
        "class_counts": _plot_class_counts(splits.classes, counts, splits.multi_label, out_dir / "class_counts.png").name,
        "image_sizes": _plot_sizes(widths, heights, out_dir / "image_sizes.png").name,
        "samples_per_class": _plot_samples(members[0][1], readable, samples_per_class, out_dir / "samples_per_class.png").name,
    }
    summary = {
        "root": str(splits.root),
        "layout": splits.layout,
        "multi_label": splits.multi_label,
        "classes": splits.classes,
        "images": {name: len(ds) for name, ds in members},
        "readable_images": len(readable),
        "per_class": {name: dict(zip(splits.classes, c)) for name, c in counts.items()},
        "sizes": _size_stats(widths, heights),
        "pixel_formats": dict(Counter(scans[p]["mode"] for p in readable).most_common()),
        "duplicates": duplicates,
        "duplicates_across_splits": leaks,
        "unreadable": [{"path": p, "reason": r} for p, r in unreadable],
        "warnings": splits.warnings,
        "files": files,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out_dir / "summary.md").write_text(_markdown(summary), encoding="utf-8")
    return summary


def _as_config(source) -> Config:
    if isinstance(source, Config):
        return source
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        cfg = load_config(None)
        cfg.data.root = str(source)
        return cfg
    return load_config(source)


# --------------------------------------------------------------------------- the pass over files


def _scan_files(paths: list[str]) -> list[dict]:
    """Content hash, decodability, size and pixel format of every file, in one read each."""
    show = len(paths) >= 500 and can_draw_bar()
    with ThreadPoolExecutor(max_workers=file_threads()) as pool:
        return list(tqdm(pool.map(_scan_one, paths), total=len(paths), desc="scanning images", unit="img", disable=not show, leave=False))


def _scan_one(path: str) -> dict:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return {"hash": None, "problem": f"cannot be read ({e.strerror})", "width": 0, "height": 0, "mode": ""}
    info = inspect_image(io.BytesIO(data), name=path) if data else ImageInfo(problem="empty file")
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    return {"hash": digest, "problem": info.problem, "width": info.width, "height": info.height, "mode": info.mode}


def _class_counts(dataset, readable: set[str]) -> list[int]:
    keep = torch.tensor([str(p) in readable for p in dataset.paths], dtype=torch.bool)
    targets = dataset.targets[keep]
    if dataset.multi_label:
        return (targets > 0).sum(0).tolist()
    return torch.bincount(targets, minlength=len(dataset.classes)).tolist()


def _duplicates(scans: dict, members) -> tuple[list[dict], int]:
    """Groups of readable images with identical bytes (with their splits), and how many span
    splits. Unreadable files are left out: they are skipped in training, so they leak nothing."""
    split_of = {str(p): name for name, ds in members for p in ds.paths}
    groups = defaultdict(list)
    for path, scan in scans.items():
        if scan["hash"] is not None and scan["problem"] is None:
            groups[scan["hash"]].append(path)
    duplicates = [
        {"files": group, "splits": sorted({split_of[p] for p in group}, key=SPLITS.index)}
        for group in sorted(sorted(g) for g in groups.values() if len(g) > 1)
    ]
    return duplicates, sum(len(d["splits"]) > 1 for d in duplicates)


def _size_stats(widths: list[int], heights: list[int]) -> dict:
    if not widths:
        return {}
    w, h = np.array(widths), np.array(heights)
    return {
        "width": {"min": int(w.min()), "median": float(np.median(w)), "max": int(w.max())},
        "height": {"min": int(h.min()), "median": float(np.median(h)), "max": int(h.max())},
        "distinct_sizes": len(set(zip(widths, heights))),
    }


# --------------------------------------------------------------------------- plots


def _plot_class_counts(classes: list[str], counts: dict[str, list[int]], multi_label: bool, path: Path) -> Path:
    num = len(classes)
    fig, ax = new_figure(size=(min(18.0, max(6.0, 0.35 * num + 2)), 4.5))
    positions = np.arange(num)
    if num <= 60:
        width = 0.8 / max(1, len(counts))
        for k, (name, values) in enumerate(counts.items()):
            offset = (k - (len(counts) - 1) / 2) * width
            ax.bar(positions + offset, values, width, label=f"{name} ({sum(values)})", color=SPLIT_COLOURS[name])
        ax.set_xticks(positions, classes, rotation=90 if num > 12 else 0, fontsize=8)
        ax.set_xlabel("class")
    else:  # too many for names: classes sorted by training count, a long-tail curve
        order = np.argsort(counts["train"])[::-1]
        for name, values in counts.items():
            ax.plot(positions, np.asarray(values)[order], label=f"{name} ({sum(values)})", color=SPLIT_COLOURS[name])
        ax.set_xlabel(f"class, sorted by training images ({num} classes)")
    ax.set_ylabel("images with the label" if multi_label else "images")
    ax.set_title("images per class")
    ax.set_ylim(0, 1.2 * max([max(v, default=0) for v in counts.values()] + [1]))  # room for the legend
    ax.legend(loc="upper center", ncol=len(counts))
    return save_figure(fig, path)


def _plot_sizes(widths: list[int], heights: list[int], path: Path) -> Path:
    fig, (hist, scatter) = new_figure(1, 2, size=(10.0, 4.0))
    if widths:
        low, high = min(widths + heights), max(widths + heights)
        bins = np.linspace(low - 0.5, high + 0.5, min(40, high - low + 1) + 1)  # whole pixels per bin at most
        hist.hist(widths, bins=bins, alpha=0.5, label="width", color="tab:blue")
        hist.hist(heights, bins=bins, alpha=0.5, label="height", color="tab:orange")
        hist.legend()
        sizes = Counter(zip(widths, heights))
        w, h, n = (np.array(v) for v in zip(*((w, h, n) for (w, h), n in sizes.items())))
        scatter.scatter(w, h, s=10 + 90 * np.sqrt(n / n.max()), alpha=0.6)
        scatter.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle="--", label="square")
        scatter.legend()
    hist.set_xlabel("pixels")
    hist.set_ylabel("images")
    hist.set_title("image width and height")
    scatter.set_xlabel("width (px)")
    scatter.set_ylabel("height (px)")
    scatter.set_title("sizes (marker area ~ count)")
    return save_figure(fig, path)


def _plot_samples(dataset, readable: set[str], per_class: int, path: Path) -> Path:
    shown = list(range(min(len(dataset.classes), MAX_GRID_CLASSES)))
    fig, axes = new_figure(len(shown), per_class, size=(1.3 * per_class + 1.2, 1.3 * len(shown) + 0.4), squeeze=False)
    for row, c in enumerate(shown):
        members = (dataset.targets[:, c] > 0) if dataset.multi_label else dataset.targets == c
        picks = [i for i in members.nonzero().flatten().tolist() if str(dataset.paths[i]) in readable][:per_class]
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col < len(picks):
                image = _thumbnail(read_image(dataset.paths[picks[col]], "RGB"))
                ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
        axes[row][0].set_ylabel(dataset.classes[c], rotation=0, ha="right", va="center", fontsize=9)
    title = "training images per class"
    if len(dataset.classes) > len(shown):
        title += f" (first {len(shown)} of {len(dataset.classes)} classes)"
    fig.suptitle(title)
    return save_figure(fig, path)


def _thumbnail(image: torch.Tensor) -> torch.Tensor:
    if max(image.shape[-2:]) <= THUMBNAIL_SIDE:
        return image
    return v2.functional.resize(image, THUMBNAIL_SIDE - 1, max_size=THUMBNAIL_SIDE, antialias=True)


# --------------------------------------------------------------------------- markdown


def _markdown(summary: dict) -> str:
    lines = [f"# Dataset report: {summary['root']}", ""]
    kind = "multi-label" if summary["multi_label"] else "single-label"
    images = ", ".join(f"{n} {name}" for name, n in summary["images"].items())
    lines += [f"- layout: {summary['layout']}, {len(summary['classes'])} classes, {kind}"]
    lines += [f"- images listed: {images} ({summary['readable_images']} readable)"]
    sizes = summary["sizes"]
    if sizes:
        lines.append(
            f"- sizes: width {sizes['width']['min']}..{sizes['width']['max']} (median {sizes['width']['median']:g}), "
            f"height {sizes['height']['min']}..{sizes['height']['max']} (median {sizes['height']['median']:g}), "
            f"{sizes['distinct_sizes']} distinct"
        )
    formats = ", ".join(f"{mode} {n}" for mode, n in summary["pixel_formats"].items())
    lines += [f"- pixel formats: {formats}", f"- unreadable or unusable files: {len(summary['unreadable'])}"]
    duplicates, leaks = len(summary["duplicates"]), summary["duplicates_across_splits"]
    lines += [f"- duplicate groups (same bytes): {duplicates}, of which across splits: {leaks}"]
    lines += [f"- note: {w}" for w in summary["warnings"]]
    lines += ["", "## Images per class", ""]
    header = ["class", *summary["per_class"]]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, name in enumerate(summary["classes"]):
        lines.append("| " + " | ".join([name, *(str(list(c.values())[i]) for c in summary["per_class"].values())]) + " |")
    if summary["unreadable"]:
        lines += ["", "## Unreadable or unusable files", ""] + [f"- `{u['path']}`: {u['reason']}" for u in summary["unreadable"]]
    if summary["duplicates"]:
        lines += ["", "## Duplicate files", ""]
        for group in summary["duplicates"][:100]:
            where = f" (across {' and '.join(group['splits'])}: evaluation data seen in training)" if len(group["splits"]) > 1 else ""
            lines.append("- " + ", ".join(f"`{p}`" for p in group["files"]) + where)
        if len(summary["duplicates"]) > 100:
            lines.append(f"- ... {len(summary['duplicates']) - 100} more groups in summary.json")
    lines += ["", "## Plots", ""] + [f"![{key}]({name})" for key, name in summary["files"].items()]
    return "\n".join(lines) + "\n"
