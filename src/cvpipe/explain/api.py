"""Explaining a stream of images end to end: what ``cvpipe cam`` and ``cvpipe features`` run.

The caller supplies samples as ``(name, input, display)``: the normalised model input
(C, H, W) and the same image for drawing (uint8 or [0, 1] floats, same H, W). Reading files
and building the transform stay with the caller, so this works for any model and source.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import torch
import torch.nn as nn

from cvpipe.errors import ConfigError
from cvpipe.explain.cam import CamResult, Target, canonical_method, compute_cam
from cvpipe.explain.faithfulness import DEFAULT_FRACTIONS, class_probability, road_score
from cvpipe.explain.features import capture_features, save_feature_grid
from cvpipe.explain.render import save_cam_grid, save_cam_outputs

# (name, input (C, H, W), display (C, H, W)); a Path as name is an image file: outputs are named
# after its stem and the summary keeps the whole path in ``source``
Sample = tuple[Union[str, Path], torch.Tensor, torch.Tensor]


@dataclass
class CamRecord:
    image: str  # the name the outputs carry (unique within a run: cat, cat_2, ...)
    source: str  # what it was made from: the image file, or the name given
    method: str
    target: str  # class name (or index when names are unknown)
    probability: float  # the model's probability of the explained class (sigmoid when multi-label)
    overlay: str
    map: str
    confidence_drop: Optional[float] = None  # ROAD scores, when faithfulness was asked for
    road: Optional[float] = None


@dataclass
class CamReport:
    out_dir: Path
    records: list[CamRecord]
    grid: Optional[Path]
    summary_csv: Path
    skipped: dict[str, str] = field(default_factory=dict)  # method -> why it could not run

    def faithfulness(self) -> dict[str, dict[str, float]]:
        """Mean ROAD scores per method over all images (empty when not computed)."""
        table: dict[str, dict[str, list[float]]] = {}
        for r in self.records:
            if r.road is None:
                continue
            scores = table.setdefault(r.method, {"confidence_drop": [], "road": []})
            scores["confidence_drop"].append(r.confidence_drop)
            scores["road"].append(r.road)
        return {m: {k: sum(v) / len(v) for k, v in s.items()} for m, s in table.items()}


def explain_images(
    model: nn.Module,
    samples: Iterable[Sample],
    out_dir: Union[str, Path],
    methods: Sequence[str] = ("gradcam",),
    layers=None,
    target: Target = None,
    class_names: Optional[Sequence[str]] = None,
    faithfulness: bool = False,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    batch_size: int = 8,
    grid_max: int = 16,
    alpha: float = 0.5,
    skip_unsupported: bool = False,
    multi_label: bool = False,
) -> CamReport:
    """CAM overlays (``NAME_METHOD.png``), raw maps (``NAME_METHOD.npy``), ``cam_grid.png`` (the first
    ``grid_max`` images, one column per method) and ``cam_summary.csv`` in ``out_dir``.

    methods: CAM method names; every method explains the same target class per image.
    target: None (each image's predicted class), one class index/name for all images, or a
        list with one entry per image in stream order.
    faithfulness: also score each map with ROAD (:func:`road_score`); slower (2 x len(fractions)
    extra forward passes and imputations per image and method).
    skip_unsupported: drop a method the model cannot support (CAM without a GAP + linear head)
    instead of failing; dropped methods are listed in ``CamReport.skipped``.
    multi_label: the model scores each class with its own sigmoid; probabilities (summary,
    titles, ROAD) are then sigmoids of the logits, not a softmax over classes.
    """
    methods = [canonical_method(m) for m in methods]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = next(iter(model.parameters()), torch.empty(0)).device
    records: list[CamRecord] = []
    grid_results: dict[str, list[CamResult]] = {m: [] for m in methods}
    grid_display, grid_names = [], []
    grid_shape = None  # the grid shows images of the first batch's size only
    used: set[str] = set()
    skipped: dict[str, str] = {}
    seen = 0
    for names, inputs, display in _batches(samples, batch_size):
        sources = [str(n) for n in names]
        names = [_unique(n.stem if isinstance(n, Path) else n, used) for n in names]
        targets = target[seen : seen + len(names)] if isinstance(target, (list, tuple)) else target
        seen += len(names)
        inputs = inputs.to(device)
        grid_shape = grid_shape or tuple(display.shape[1:])
        room = grid_max - len(grid_display) if tuple(display.shape[1:]) == grid_shape else 0
        for method in list(methods):
            try:
                result = compute_cam(model, inputs, method, layers, targets, class_names)
            except ConfigError as error:
                if not (skip_unsupported and method == "cam" and "method=cam needs" in str(error)):
                    raise
                methods.remove(method)
                skipped[method] = str(error)
                continue
            targets = result.targets.tolist()  # the next methods explain the same classes
            if multi_label:
                result = replace(result, probs=class_probability(result.logits, result.targets, multi_label=True))
            written = save_cam_outputs(result, display, out_dir, names, class_names, alpha)
            scores = (
                road_score(model, inputs, result.maps.to(device), result.targets, fractions, multi_label=multi_label)
                if faithfulness
                else None
            )
            for i, name in enumerate(names):
                t = int(result.targets[i])
                records.append(
                    CamRecord(
                        image=name,
                        source=sources[i],
                        method=method,
                        target=class_names[t] if class_names is not None and t < len(class_names) else str(t),
                        probability=float(result.probs[i]),
                        overlay=str(written["overlays"][i]),
                        map=str(written["maps"][i]),
                        confidence_drop=None if scores is None else float(scores.confidence_drop[i]),
                        road=None if scores is None else float(scores.road[i]),
                    )
                )
            if room > 0:
                grid_results[method].append(_take(result, room))
        if room > 0:
            grid_display += list(display[:room])
            grid_names += names[:room]
    if not records:
        raise ValueError("explain_images got no images")
    grid = None
    if grid_display:
        merged = [_concat(grid_results[m]) for m in methods]
        grid = save_cam_grid(merged, torch.stack(grid_display), out_dir / "cam_grid.png", class_names, grid_names, alpha)
    summary = out_dir / "cam_summary.csv"
    with summary.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(records[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in records)
    return CamReport(out_dir, records, grid, summary, skipped)


def save_feature_maps(
    model: nn.Module,
    image: torch.Tensor,
    display: torch.Tensor,
    out_dir: Union[str, Path],
    layers=None,
    topk: int = 15,
    prefix: str = "features",
) -> list[Path]:
    """One grid PNG per layer: ``{prefix}_{layer}.png`` with the input, channel mean and top-k channels.

    image: (C, H, W) normalised model input; display: the same image for drawing.
    """
    device = next(iter(model.parameters()), torch.empty(0)).device
    maps = capture_features(model, image[None].to(device), layers)
    paths = []
    for name, fmap in maps.items():
        path = Path(out_dir) / f"{prefix}_{name.replace('.', '_') or 'model'}.png"
        title = f"{name}: {fmap.shape[1]} channels at {fmap.shape[2]}x{fmap.shape[3]}"
        paths.append(save_feature_grid(fmap[0].cpu(), display, path, topk=topk, title=title))
    return paths


def _batches(samples: Iterable[Sample], size: int) -> Iterator[tuple[list, torch.Tensor, torch.Tensor]]:
    """Stack consecutive samples of one input size into batches of at most ``size``."""
    names, inputs, displays = [], [], []
    for name, x, shown in samples:
        if inputs and (x.shape != inputs[0].shape or shown.shape != displays[0].shape or len(inputs) == size):
            yield names, torch.stack(inputs), torch.stack(displays)
            names, inputs, displays = [], [], []
        names.append(name)
        inputs.append(x)
        displays.append(shown)
    if inputs:
        yield names, torch.stack(inputs), torch.stack(displays)


def _unique(name: str, used: set[str]) -> str:
    candidate, k = name, 2
    while candidate in used:
        candidate, k = f"{name}_{k}", k + 1
    used.add(candidate)
    return candidate


def _take(result: CamResult, n: int) -> CamResult:
    return CamResult(result.maps[:n], result.targets[:n], result.probs[:n], result.logits[:n], result.method, result.layers)


def _concat(results: Sequence[CamResult]) -> CamResult:
    first = results[0]
    return CamResult(
        torch.cat([r.maps for r in results]),
        torch.cat([r.targets for r in results]),
        torch.cat([r.probs for r in results]),
        torch.cat([r.logits for r in results]),
        first.method,
        first.layers,
    )
