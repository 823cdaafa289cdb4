"""Training losses built from :class:`~cvpipe.config.LossConfig`.

Every loss built here is called ``loss(outputs, target)``:

- single-label: ``outputs`` (N, C) logits, ``target`` (N,) int64 class indices;
- multi-label: ``outputs`` (N, C) logits, ``target`` (N, C) multi-hot floats;
- a model with auxiliary classifiers returns a tuple ``(logits, aux1, ...)`` in training; the
  loss is then ``loss(logits) + aux_weight * sum(loss(aux_i))`` (GoogLeNet's 0.3 weighting).

``name`` picks the criterion: ``auto`` (cross-entropy, or BCE for multi-label), ``ce``,
``focal``, ``bce``, ``triplet`` or a dotted path ``package.module.Class`` to a user's own
``nn.Module``, constructed with ``cfg.kwargs``.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cvpipe.config import LossConfig
from cvpipe.errors import ConfigError

LOSSES = ("auto", "ce", "focal", "bce", "triplet")


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 logits (autocast) are computed in float32; float32/float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


# --------------------------------------------------------------------------- single-label


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """``nn.CrossEntropyLoss`` that also takes fp16/bf16 logits outside autocast (computed in
    float32) and float64 logits with float32 class weights."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = _upcast(logits)
        weight = self.weight.to(logits.dtype) if self.weight is not None else None
        return F.cross_entropy(
            logits, target, weight=weight, ignore_index=self.ignore_index,
            reduction=self.reduction, label_smoothing=self.label_smoothing,
        )


class FocalLoss(nn.Module):
    """Softmax focal loss (Lin et al., 2017) for single-label targets.

    Per sample, with ``p = softmax(logits)`` and smoothed targets
    ``q = (1 - eps) * onehot(y) + eps / C``::

        loss_i = sum_c  w_c * q_c * (1 - p_c) ** gamma * (-log p_c)

    averaged with the weights of the true classes as ``nn.CrossEntropyLoss`` does
    (``sum_i loss_i / sum_i w_{y_i}``), so ``gamma = 0`` is exactly cross-entropy with the same
    ``weight`` and ``label_smoothing``. The per-class ``weight`` plays the role of the paper's
    alpha for more than two classes.

    Shapes: ``logits`` (N, C), ``target`` (N,) int64.
    """

    def __init__(self, gamma: float = 2.0, weight: Optional[torch.Tensor] = None, label_smoothing: float = 0.0):
        super().__init__()
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", weight.clone().float() if weight is not None else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(_upcast(logits), dim=1)
        # (1 - p)^gamma * (-log p) for every class; the true class gets the (1 - eps) share.
        focal = (-log_p) * (1.0 - log_p.exp()).clamp(min=0).pow(self.gamma)
        num_classes = logits.shape[1]
        weight = self.weight.to(log_p.dtype) if self.weight is not None else log_p.new_ones(num_classes)
        true_term = focal.gather(1, target[:, None]).squeeze(1) * weight[target]
        smooth_term = (focal * weight).sum(1) / num_classes
        per_sample = (1.0 - self.label_smoothing) * true_term + self.label_smoothing * smooth_term
        return per_sample.sum() / weight[target].sum()


# --------------------------------------------------------------------------- multi-label


def _as_multi_hot(target: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """(N,) class indices become one-hot rows, so sigmoid losses also train single-label data."""
    if target.ndim == 1:
        return F.one_hot(target.long(), num_classes).to(dtype)
    return target.to(dtype)


class MultiLabelBCELoss(nn.Module):
    """Binary cross-entropy on logits, mean over all N x C entries.

    Targets are smoothed to ``t * (1 - eps) + eps / 2``; ``weight`` (C,) scales each class's
    column. Shapes: ``logits`` (N, C), ``target`` (N, C) multi-hot (or (N,) indices, one-hot
    encoded).
    """

    def __init__(self, weight: Optional[torch.Tensor] = None, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", weight.clone().float() if weight is not None else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = _upcast(logits)
        target = _as_multi_hot(target, logits.shape[1], logits.dtype)
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        weight = self.weight.to(logits.dtype) if self.weight is not None else None
        return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


class SigmoidFocalLoss(nn.Module):
    """Sigmoid focal loss (Lin et al., 2017) for multi-label targets, mean over N x C entries.

    ``loss = alpha_t * (1 - p_t) ** gamma * BCE(logits, t)`` with ``p_t = p t + (1 - p)(1 - t)``
    and ``alpha_t = alpha t + (1 - alpha)(1 - t)`` (no alpha term when ``alpha`` is None), as
    in RetinaNet; ``weight`` (C,) scales each class's column.
    """

    def __init__(self, gamma: float = 2.0, alpha: Optional[float] = None, weight: Optional[torch.Tensor] = None):
        super().__init__()
        self.gamma = gamma
        self.alpha = alpha
        self.register_buffer("weight", weight.clone().float() if weight is not None else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = _upcast(logits)
        target = _as_multi_hot(target, logits.shape[1], logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p = torch.sigmoid(logits)
        p_t = p * target + (1 - p) * (1 - target)
        loss = bce * (1 - p_t).pow(self.gamma)
        if self.alpha is not None:
            loss = loss * (self.alpha * target + (1 - self.alpha) * (1 - target))
        if self.weight is not None:
            loss = loss * self.weight
        return loss.mean()


# --------------------------------------------------------------------------- metric learning


def improved_triplet_loss(
    matched: torch.Tensor, mismatched: torch.Tensor, t1: float, t2: float, beta: float
) -> torch.Tensor:
    """``mean(clamp(matched - mismatched, min=t1) + beta * clamp(matched, min=t2))``.

    ``matched`` and ``mismatched`` are (N,) squared distances anchor-positive and
    anchor-negative. The first term asks each negative to be farther than the positive (until
    the gap reaches ``-t1``); the second pulls positives together (until ``t2``). This is the
    improved triplet loss of Cheng et al. (CVPR 2016), as the notes give it.
    """
    part_1 = torch.clamp(matched - mismatched, min=t1)
    part_2 = torch.clamp(matched, min=t2)
    return (part_1 + beta * part_2).mean()


class TripletLoss(nn.Module):
    """The notes' triplet loss on explicit triplets: ``loss(anchor, positive, negative)``.

    Inputs are (N, D) embeddings; distances are squared Euclidean, ``||a - p||^2`` and
    ``||a - n||^2``. Defaults are Cheng et al.'s values (t1 = -1, t2 = 0.01, beta = 0.002).
    """

    def __init__(self, t1: float = -1.0, t2: float = 0.01, beta: float = 0.002):
        super().__init__()
        self.t1, self.t2, self.beta = t1, t2, beta

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        matched = (anchor - positive).pow(2).sum(-1)
        mismatched = (anchor - negative).pow(2).sum(-1)
        return improved_triplet_loss(matched, mismatched, self.t1, self.t2, self.beta)


class BatchHardTripletLoss(nn.Module):
    """The notes' triplet loss with triplets mined inside the batch: ``loss(embeddings, labels)``.

    This is what ``loss.name=triplet`` trains with: the model's output vectors (N, D) are
    treated as embeddings, not logits. Every sample is an anchor; its positive is the farthest
    sample of the same label and its negative the nearest sample of another label ("batch
    hard", Hermans et al., 2017), then :func:`improved_triplet_loss` is applied. Anchors without
    a positive or a negative in the batch are skipped (the loss is 0 when none is left, still
    connected to the graph), so batches should hold at least two samples per class.
    """

    def __init__(self, t1: float = -1.0, t2: float = 0.01, beta: float = 0.002):
        super().__init__()
        self.t1, self.t2, self.beta = t1, t2, beta

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if labels.ndim != 1:
            raise ConfigError("loss.name=triplet needs single-label data (one class per image)")
        emb = _upcast(embeddings).flatten(1)
        dist = torch.cdist(emb, emb).pow(2)  # (N, N) squared distances
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        positive_mask, negative_mask = same & ~eye, ~same
        hardest_positive = dist.masked_fill(~positive_mask, float("-inf")).amax(1)
        hardest_negative = dist.masked_fill(~negative_mask, float("inf")).amin(1)
        valid = positive_mask.any(1) & negative_mask.any(1)
        if not valid.any():
            return emb.sum() * 0.0
        return improved_triplet_loss(
            hardest_positive[valid], hardest_negative[valid], self.t1, self.t2, self.beta
        )


# --------------------------------------------------------------------------- wrapper and builder


class WithAuxiliary(nn.Module):
    """Applies ``criterion`` to logits, or to a tuple ``(logits, aux1, ...)`` with weighted aux terms."""

    def __init__(self, criterion: nn.Module, aux_weight: float = 0.3):
        super().__init__()
        self.criterion = criterion
        self.aux_weight = aux_weight

    def forward(self, outputs: Union[torch.Tensor, Sequence[torch.Tensor]], target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            return self.criterion(outputs, target)
        main, *aux = outputs
        loss = self.criterion(main, target)
        for extra in aux:
            loss = loss + self.aux_weight * self.criterion(extra, target)
        return loss


def build_loss(cfg: LossConfig, multi_label: bool, class_weights: Optional[torch.Tensor] = None) -> nn.Module:
    """The criterion ``cfg.name`` as a module called ``loss(outputs, target)``.

    ``class_weights`` (C,) weights classes in ce / focal / bce (see
    :func:`class_weights_from_config` to resolve ``cfg.class_weights``). Wrapped in
    :class:`WithAuxiliary`, so tuple outputs of auxiliary-head models are handled. Raises
    :class:`ConfigError` for an unknown name (with a suggestion), a loss that cannot take the
    label type, or a user class that cannot be imported or built.
    """
    check_loss_config(cfg)
    name = cfg.name
    if name == "auto":
        name = "bce" if multi_label else "ce"
    if class_weights is not None:
        class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
    if name == "ce":
        if multi_label:
            raise ConfigError("loss.name=ce needs single-label data; use bce or focal for multi-label")
        criterion = CrossEntropyLoss(weight=class_weights, label_smoothing=cfg.label_smoothing)
    elif name == "focal":
        if multi_label:
            criterion = SigmoidFocalLoss(cfg.focal_gamma, cfg.focal_alpha, class_weights)
        else:
            if cfg.focal_alpha is not None:
                raise ConfigError(
                    "loss.focal_alpha applies to multi-label (sigmoid) focal loss; "
                    "for single-label data weight classes with loss.class_weights"
                )
            criterion = FocalLoss(cfg.focal_gamma, class_weights, cfg.label_smoothing)
    elif name == "bce":
        criterion = MultiLabelBCELoss(class_weights, cfg.label_smoothing)
    elif name == "triplet":
        if multi_label:
            raise ConfigError("loss.name=triplet needs single-label data (one class per image)")
        criterion = BatchHardTripletLoss(cfg.triplet_t1, cfg.triplet_t2, cfg.triplet_beta)
    else:  # a dotted path: check_loss_config let nothing else through
        criterion = _user_loss(name, cfg.kwargs)
    return WithAuxiliary(criterion, cfg.aux_weight)


def check_loss_config(cfg: LossConfig) -> None:
    """ConfigError naming the ``loss`` setting that no data could make right: an unknown name
    (with a suggestion), label smoothing outside [0, 1), a malformed ``class_weights``. Whether
    the loss suits the labels and the number of class weights are checked once data is read."""
    name = cfg.name
    if name not in LOSSES and "." not in name:
        close = difflib.get_close_matches(name, LOSSES, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}?" if close else f"choose one of {', '.join(LOSSES)} or a package.module.Class"
        raise ConfigError(f"loss.name {name!r} is not a loss; {hint}")
    if not 0.0 <= cfg.label_smoothing < 1.0:
        raise ConfigError(f"loss.label_smoothing must be in [0, 1), got {cfg.label_smoothing}")
    spec = cfg.class_weights
    if isinstance(spec, str) and spec not in ("", "balanced"):
        raise ConfigError(f"loss.class_weights {spec!r}: use balanced, or a list with one number per class")
    if not isinstance(spec, str) and any(w < 0 for w in spec):
        raise ConfigError("loss.class_weights must be non-negative")


def _user_loss(path: str, kwargs: dict) -> nn.Module:
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or an error raised while importing the user's module
        raise ConfigError(f"loss.name {path}: cannot import module {module_name} ({e})") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"loss.name {path}: module {module_name} has no attribute {class_name}")
    try:
        criterion = cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"loss.name {path}: cannot construct it with loss.kwargs={kwargs} ({e})") from None
    if not callable(criterion):
        raise ConfigError(f"loss.name {path}: {class_name}(...) is not callable as loss(logits, target)")
    return criterion if isinstance(criterion, nn.Module) else _CallableLoss(criterion)


class _CallableLoss(nn.Module):
    """Lets a plain callable object sit where an ``nn.Module`` is expected."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, outputs, target):
        return self.fn(outputs, target)


# --------------------------------------------------------------------------- class weights


def balanced_class_weights(counts: Union[Sequence[int], np.ndarray, torch.Tensor]) -> torch.Tensor:
    """Weights ``n_samples / (n_classes * count_c)`` (scikit-learn's ``"balanced"``), (C,) float32.

    ``counts`` (C,) are samples per class. ``n_classes`` counts the classes that have samples,
    as scikit-learn does for the classes present; a class with no samples gets weight 1 (it is
    never a target, and 1 keeps it neutral in label smoothing).
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError("counts must be a 1-D sequence of non-negative sample counts")
    present = counts > 0
    if not present.any():
        return torch.ones(len(counts))
    weights = counts.sum() / (present.sum() * counts.clamp(min=1))
    return torch.where(present, weights, torch.ones_like(weights)).float()


def class_weights_from_config(cfg: LossConfig, counts: Union[Sequence[int], torch.Tensor]) -> Optional[torch.Tensor]:
    """Resolve ``cfg.class_weights`` ("" -> None, "balanced", or an explicit list of C numbers).

    ``counts`` (C,) are training samples per class (positives per class for multi-label).
    """
    check_loss_config(cfg)
    spec = cfg.class_weights
    num_classes = len(counts)
    if spec == "":
        return None
    if spec == "balanced":
        return balanced_class_weights(counts)
    if len(spec) != num_classes:
        raise ConfigError(f"loss.class_weights has {len(spec)} numbers for {num_classes} classes; give one per class")
    return torch.tensor(spec, dtype=torch.float32)
