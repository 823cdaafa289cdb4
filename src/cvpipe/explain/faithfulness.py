"""How faithful is a saliency map? Remove the pixels it calls relevant and watch the confidence.

ROAD (Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution Methods",
ICML 2022): for each fraction ``p`` of pixels, remove the most relevant ``p`` first (MoRF) or the
least relevant first (LeRF) and measure the model's probability for the explained class.
Removed pixels are filled by *noisy linear imputation*: each one becomes the weighted mean of
its 8 neighbours (1/6 for edge, 1/12 for corner neighbours), solved jointly as one sparse linear
system, plus a little Gaussian noise. Unlike filling with zeros or a blur, this leaves no
tell-tale mask shape for the model to react to.

A faithful map makes the probability fall fast under MoRF and slowly under LeRF, so we report

- ``confidence_drop`` = p(original) - mean over p of p(MoRF)   (higher is better)
- ``road`` = mean over p of [p(LeRF) - p(MoRF)]                 (higher is better)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
import torch.nn as nn

from cvpipe.explain.hooks import eval_mode

DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

# (row offset, column offset, weight) of the neighbours in the imputation equation.
_NEIGHBOURS = (
    (-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12),
    (0, -1, 1 / 6), (0, 1, 1 / 6),
    (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12),
)  # fmt: skip


@dataclass
class Faithfulness:
    """ROAD scores for one batch; per-image tensors are (B,), curves are (B, len(fractions))."""

    fractions: tuple[float, ...]
    original: torch.Tensor  # p(target) on the untouched image
    morf: torch.Tensor  # p(target) with the most relevant fraction removed
    lerf: torch.Tensor  # p(target) with the least relevant fraction removed

    @property
    def confidence_drop(self) -> torch.Tensor:
        return self.original - self.morf.mean(1)

    @property
    def road(self) -> torch.Tensor:
        return (self.lerf - self.morf).mean(1)

    def summary(self) -> dict[str, float]:
        return {
            "confidence_drop": float(self.confidence_drop.mean()),
            "road": float(self.road.mean()),
            "p_original": float(self.original.mean()),
            "p_morf": float(self.morf.mean()),
            "p_lerf": float(self.lerf.mean()),
        }


def impute_linear(image: torch.Tensor, removed: torch.Tensor, noise: float = 0.01, generator=None) -> torch.Tensor:
    """Fill the ``removed`` pixels of ``image`` from their neighbours (ROAD's noisy linear imputation).

    image: (C, H, W) float. removed: (H, W) bool, True where the pixel is replaced.
    Every removed pixel satisfies ``v = sum_n w_n v_n / sum_n w_n`` over its in-image
    neighbours, where neighbours that are kept contribute their known values. Returns a new
    (C, H, W) tensor; kept pixels are unchanged.
    """
    c, h, w = image.shape
    mask = removed.cpu().numpy().reshape(-1)
    unknown = np.flatnonzero(mask)
    if unknown.size == 0:
        return image.clone()
    values = image.detach().cpu().double().numpy().reshape(c, -1)
    slot = np.full(h * w, -1, dtype=np.int64)
    slot[unknown] = np.arange(unknown.size)
    rows_u, cols_u = np.divmod(unknown, w)

    eq_rows, eq_cols, eq_vals = [], [], []
    rhs = np.zeros((unknown.size, c))
    total_weight = np.zeros(unknown.size)
    for dr, dc, weight in _NEIGHBOURS:
        r, col = rows_u + dr, cols_u + dc
        inside = (r >= 0) & (r < h) & (col >= 0) & (col < w)
        eq = np.flatnonzero(inside)
        neighbour = r[inside] * w + col[inside]
        total_weight[eq] += weight
        is_unknown = mask[neighbour]
        # Unknown neighbours are variables; known ones move to the right-hand side.
        eq_rows.append(eq[is_unknown])
        eq_cols.append(slot[neighbour[is_unknown]])
        eq_vals.append(np.full(int(is_unknown.sum()), -weight))
        rhs[eq[~is_unknown]] += weight * values[:, neighbour[~is_unknown]].T
    eq_rows.append(np.arange(unknown.size))
    eq_cols.append(np.arange(unknown.size))
    eq_vals.append(total_weight)
    system = scipy.sparse.csc_matrix(
        (np.concatenate(eq_vals), (np.concatenate(eq_rows), np.concatenate(eq_cols))),
        shape=(unknown.size, unknown.size),
    )
    solution = scipy.sparse.linalg.spsolve(system, rhs).reshape(unknown.size, c)
    filled = torch.from_numpy(values.T.copy()).to(image.dtype)  # (HW, C)
    fill = torch.from_numpy(solution).to(image.dtype)
    if noise > 0:
        fill = fill + noise * torch.randn(fill.shape, generator=generator, dtype=fill.dtype)
    filled[torch.from_numpy(unknown)] = fill
    return filled.T.reshape(c, h, w).to(image.device)


def removal_mask(saliency: torch.Tensor, fraction: float, most_relevant: bool) -> torch.Tensor:
    """(H, W) saliency -> (H, W) bool marking exactly round(fraction * H * W) pixels to remove."""
    flat = saliency.reshape(-1)
    k = int(round(fraction * flat.numel()))
    order = torch.argsort(flat, descending=most_relevant, stable=True)
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=saliency.device)
    mask[order[:k]] = True
    return mask.reshape(saliency.shape)


@torch.no_grad()
def road_score(
    model: nn.Module,
    inputs: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    noise: float = 0.01,
    seed: int = 0,
    batch_size: int = 32,
    multi_label: bool = False,
) -> Faithfulness:
    """ROAD MoRF / LeRF curves of ``maps`` for ``model``.

    inputs: (B, C, H, W) normalised model inputs. maps: (B, H, W) saliency at the same size.
    targets: (B,) class indices. The imputation noise is seeded, so scores are repeatable.
    multi_label: the class probability is the sigmoid of its logit, not a softmax over classes.
    """
    if maps.shape[0] != inputs.shape[0] or maps.shape[-2:] != inputs.shape[-2:]:
        raise ValueError(f"maps {tuple(maps.shape)} must be (B, H, W) matching inputs {tuple(inputs.shape)}")
    generator = torch.Generator().manual_seed(seed)
    device = inputs.device
    fractions = tuple(float(f) for f in fractions)
    perturbed, owners = [], []
    for i in range(inputs.shape[0]):
        for most_relevant in (True, False):
            for fraction in fractions:
                removed = removal_mask(maps[i], fraction, most_relevant)
                perturbed.append(impute_linear(inputs[i].cpu(), removed.cpu(), noise, generator))
                owners.append(i)
    targets = targets.to(device)
    with eval_mode(model):
        original = _probabilities(model, inputs, targets, batch_size, multi_label)
        batch = torch.stack(perturbed).to(device)
        probs = _probabilities(model, batch, targets[torch.tensor(owners, device=device)], batch_size, multi_label)
    probs = probs.reshape(inputs.shape[0], 2, len(fractions))
    return Faithfulness(fractions, original.cpu(), probs[:, 0].cpu(), probs[:, 1].cpu())


def _probabilities(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, multi_label: bool = False
) -> torch.Tensor:
    out = []
    for start in range(0, inputs.shape[0], batch_size):
        logits = model(inputs[start : start + batch_size]).float()
        out.append(class_probability(logits, targets[start : start + batch_size], multi_label))
    return torch.cat(out)


def class_probability(logits: torch.Tensor, targets: torch.Tensor, multi_label: bool = False) -> torch.Tensor:
    """(B, K) logits, (B,) class indices -> (B,) the model's probability of each class: softmax
    over the classes, or for a multi-label model (one sigmoid per class) the sigmoid."""
    chosen = logits.float().gather(1, targets[:, None])[:, 0]
    return chosen.sigmoid() if multi_label else logits.float().softmax(1).gather(1, targets[:, None])[:, 0]


def compare_methods(
    model: nn.Module,
    inputs: torch.Tensor,
    methods: Sequence[str],
    layers=None,
    target=None,
    class_names: Optional[Sequence[str]] = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> dict[str, dict[str, float]]:
    """ROAD summary per CAM method on the same images and targets: ``{method: summary}``."""
    from cvpipe.explain.cam import compute_cam

    results = {}
    targets = target
    for method in methods:
        cam = compute_cam(model, inputs, method, layers, targets, class_names)
        targets = cam.targets  # every method explains the same classes
        results[cam.method] = road_score(model, inputs, cam.maps.to(inputs.device), cam.targets, fractions).summary()
    return results
