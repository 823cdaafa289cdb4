"""Classification and multi-label metrics, vectorised with NumPy in float64.

Inputs may be torch tensors or arrays. ``probs`` are scores per class (softmax probabilities
for single-label, sigmoid for multi-label); only their order matters for ranking metrics.

Conventions (they follow scikit-learn unless stated):

- A ratio with a zero denominator (precision of a class never predicted, recall of a class
  never present) is 0, like ``zero_division=0``.
- Top-k accuracy breaks ties between equal scores in favour of the lower class index, like
  ``argmax``, so top-1 equals the accuracy of ``probs.argmax(1)``.
- ROC AUC is one-vs-rest per class; for a class absent from the targets (or present in every
  sample) it is undefined and reported as NaN, as scikit-learn does. Macro and weighted AUC
  average the classes where it is defined, so one missing class does not blank the summary.
- Average precision (AP) is scikit-learn's step-wise sum ``sum_n (R_n - R_{n-1}) P_n`` over
  distinct score thresholds; a class with no positive sample has AP NaN and is left out of mAP.

Results are plain dicts of Python floats/ints/lists (JSON-ready; NaN stays ``float('nan')``).
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]


def _np(x: ArrayLike, dtype=None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        x = x.numpy()
    return np.asarray(x, dtype=dtype)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _check(probs: np.ndarray, class_names: Sequence[str]) -> None:
    if probs.ndim != 2:
        raise ValueError(f"probs must be (N, C), got shape {probs.shape}")
    if probs.shape[1] != len(class_names):
        raise ValueError(f"probs has {probs.shape[1]} columns for {len(class_names)} class names")


# --------------------------------------------------------------------------- building blocks


def confusion_matrix(targets: ArrayLike, preds: ArrayLike, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts; row = true class, column = predicted class."""
    t, p = _np(targets, np.int64), _np(preds, np.int64)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def topk_accuracy(probs: ArrayLike, targets: ArrayLike, k: int) -> float:
    """Fraction of samples whose true class ranks among the ``k`` highest scores.

    Rank of the true class = classes scored higher + classes scored equal with a lower index.
    """
    probs, t = _np(probs, np.float64), _np(targets, np.int64)
    true_score = probs[np.arange(len(t)), t][:, None]
    lower_index = np.arange(probs.shape[1])[None, :] < t[:, None]
    rank = (probs > true_score).sum(1) + ((probs == true_score) & lower_index).sum(1)
    return float((rank < k).mean()) if len(t) else float("nan")


def precision_recall_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 from counts (zero denominators give 0)."""
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)  # = 2PR / (P + R), and 0 when both are 0
    return precision, recall, f1


def _sorted_with_tie_ends(scores: np.ndarray, descending: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort every column; for each sorted position, the last position holding the same score.

    Returns ``order`` (N, C) sorting indices, ``sorted_scores`` and ``tie_end`` (N, C).
    """
    key = -scores if descending else scores
    order = np.argsort(key, axis=0, kind="stable")
    s = np.take_along_axis(scores, order, axis=0)
    n = len(s)
    idx = np.broadcast_to(np.arange(n)[:, None], s.shape)
    is_end = np.ones_like(s, dtype=bool)
    is_end[:-1] = s[1:] != s[:-1]
    # tie_end[i] = smallest group-end index >= i: a cumulative minimum from the bottom up.
    tie_end = np.minimum.accumulate(np.where(is_end, idx, n)[::-1], axis=0)[::-1]
    return order, s, tie_end


def roc_auc_per_class(scores: ArrayLike, positives: ArrayLike) -> np.ndarray:
    """One-vs-rest ROC AUC of each column: (N, C) scores and (N, C) 0/1 labels -> (C,).

    Mann-Whitney form: AUC = (sum of positive ranks - P(P+1)/2) / (P * Q), with tied scores
    given their average rank, which equals the area under the ROC curve with ties joined by a
    straight line. NaN where a column has no positive or no negative.
    """
    scores, pos = _np(scores, np.float64), _np(positives, np.float64)
    n = len(scores)
    order, s, tie_end = _sorted_with_tie_ends(scores, descending=False)
    idx = np.broadcast_to(np.arange(n)[:, None], s.shape)
    is_start = np.ones_like(s, dtype=bool)
    is_start[1:] = s[1:] != s[:-1]
    tie_start = np.maximum.accumulate(np.where(is_start, idx, 0), axis=0)
    midrank = (tie_start + tie_end) / 2.0 + 1.0  # 1-based average rank within each tie group
    pos_sorted = np.take_along_axis(pos, order, axis=0)
    n_pos = pos.sum(0)
    n_neg = n - n_pos
    rank_sum = (midrank * pos_sorted).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def average_precision_per_class(scores: ArrayLike, positives: ArrayLike) -> np.ndarray:
    """AP of each column: (N, C) scores and (N, C) 0/1 labels -> (C,); NaN with no positive.

    Walking the scores from high to low, every positive contributes the precision at the end
    of its tie group (all tied samples cross the threshold together), divided by P.
    """
    scores, pos = _np(scores, np.float64), _np(positives, np.float64)
    order, _, tie_end = _sorted_with_tie_ends(scores, descending=True)
    pos_sorted = np.take_along_axis(pos, order, axis=0)
    tp = np.cumsum(pos_sorted, axis=0)
    precision_at_end = np.take_along_axis(tp, tie_end, axis=0) / (tie_end + 1.0)
    n_pos = pos.sum(0)
    ap = _ratio((pos_sorted * precision_at_end).sum(0), n_pos)
    return np.where(n_pos > 0, ap, np.nan)


def _binary_curve(score: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true and false positives at every distinct threshold, high to low."""
    order = np.argsort(-score, kind="stable")
    s, y = score[order], positive[order]
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    tp = np.cumsum(y)[ends]
    fp = (ends + 1) - tp
    return tp, fp, s[ends]


def roc_curves(scores: ArrayLike, positives: ArrayLike) -> list[Union[tuple[np.ndarray, np.ndarray], None]]:
    """One-vs-rest ROC curve ``(fpr, tpr)`` per column, starting at (0, 0); None if undefined.

    Points are every distinct threshold (scikit-learn's ``roc_curve(drop_intermediate=False)``).
    """
    scores, pos = _np(scores, np.float64), _np(positives, np.float64)
    curves = []
    for c in range(scores.shape[1]):
        n_pos = pos[:, c].sum()
        n_neg = len(pos) - n_pos
        if n_pos == 0 or n_neg == 0:
            curves.append(None)
            continue
        tp, fp, _ = _binary_curve(scores[:, c], pos[:, c])
        curves.append((np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]))
    return curves


def pr_curves(scores: ArrayLike, positives: ArrayLike) -> list[Union[tuple[np.ndarray, np.ndarray], None]]:
    """Precision-recall curve ``(recall, precision)`` per column, recall rising from 0
    (where precision is 1, scikit-learn's convention); None for a column without positives."""
    scores, pos = _np(scores, np.float64), _np(positives, np.float64)
    curves = []
    for c in range(scores.shape[1]):
        n_pos = pos[:, c].sum()
        if n_pos == 0:
            curves.append(None)
            continue
        tp, fp, _ = _binary_curve(scores[:, c], pos[:, c])
        curves.append((np.r_[0.0, tp / n_pos], np.r_[1.0, tp / (tp + fp)]))
    return curves


def _nan_average(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    ok = ~np.isnan(values)
    if not ok.any():
        return float("nan")
    if weights is None:
        return float(values[ok].mean())
    w = weights[ok]
    return float((values[ok] * w).sum() / w.sum()) if w.sum() > 0 else float("nan")


# --------------------------------------------------------------------------- reports


def classification_report(
    probs: ArrayLike, targets: ArrayLike, class_names: Sequence[str], topk: Sequence[int] = (1, 5)
) -> dict:
    """Single-label evaluation: (N, C) scores and (N,) true class indices.

    Returns::

        {"num_samples": N,
         "top1": .., "top5": ..,             # one key per k in topk with k == 1 or k < C
         "accuracy": ..,                     # = top1
         "per_class": {name: {"precision", "recall", "f1", "support", "auc"}},
         "macro": {"precision", "recall", "f1", "auc"},     # unweighted mean over classes
         "weighted": {"precision", "recall", "f1", "auc"},  # weighted by support
         "confusion_matrix": [[..C ints..] x C]}            # rows = true, columns = predicted

    The macro average is over the classes that occur in ``targets`` or in the predictions, as
    scikit-learn's default: a class the data does not hold counts (with precision 0) only if
    the model predicts it, so evaluating on data with fewer classes than the model knows does
    not average in zeros for classes nobody asked about. Such classes keep 0 precision, recall
    and F1 in ``per_class`` (with support 0) and a NaN AUC.
    """
    p = _np(probs, np.float64)
    t = _np(targets, np.int64)
    _check(p, class_names)
    n, num_classes = p.shape
    if t.shape != (n,):
        raise ValueError(f"targets must be ({n},) class indices, got shape {t.shape}")
    preds = p.argmax(1)
    cm = confusion_matrix(t, preds, num_classes)
    tp = np.diag(cm)
    support = cm.sum(1)
    precision, recall, f1 = precision_recall_f1(tp, cm.sum(0) - tp, support - tp)
    onehot = np.eye(num_classes, dtype=np.float64)[t] if n else np.zeros((0, num_classes))
    auc = roc_auc_per_class(p, onehot)

    report: dict = {"num_samples": int(n)}
    for k in sorted(set(topk)):
        if k == 1 or k < num_classes:
            report[f"top{k}"] = topk_accuracy(p, t, k)
    report["accuracy"] = float((preds == t).mean()) if n else float("nan")
    report["per_class"] = {
        name: {
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "support": int(support[c]),
            "auc": float(auc[c]),
        }
        for c, name in enumerate(class_names)
    }
    weights = support.astype(np.float64)
    seen = (support > 0) | (cm.sum(0) > 0)
    report["macro"] = {
        "precision": float(precision[seen].mean()) if seen.any() else float("nan"),
        "recall": float(recall[seen].mean()) if seen.any() else float("nan"),
        "f1": float(f1[seen].mean()) if seen.any() else float("nan"),
        "auc": _nan_average(auc),
    }
    report["weighted"] = {
        "precision": _nan_average(precision, weights),
        "recall": _nan_average(recall, weights),
        "f1": _nan_average(f1, weights),
        "auc": _nan_average(auc, weights),
    }
    report["confusion_matrix"] = cm.tolist()
    return report


def multilabel_report(
    probs: ArrayLike, targets: ArrayLike, class_names: Sequence[str], threshold: float = 0.5
) -> dict:
    """Multi-label evaluation: (N, C) scores and (N, C) multi-hot targets.

    A class is predicted when its score is ``>= threshold``. Returns::

        {"num_samples": N, "threshold": t,
         "mAP": ..,                          # mean AP over classes with a positive sample
         "per_class": {name: {"ap", "precision", "recall", "f1", "support"}},
         "micro": {"precision", "recall", "f1"},   # counts pooled over all classes
         "macro": {"precision", "recall", "f1"},   # unweighted mean over classes
         "exact_match": ..}                  # fraction of samples with every label right
    """
    p = _np(probs, np.float64)
    y = _np(targets, np.float64)
    _check(p, class_names)
    if y.shape != p.shape:
        raise ValueError(f"targets must be multi-hot with shape {p.shape}, got {y.shape}")
    y = y > 0.5
    pred = p >= threshold
    tp = (pred & y).sum(0)
    fp = (pred & ~y).sum(0)
    fn = (~pred & y).sum(0)
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    micro_p, micro_r, micro_f1 = precision_recall_f1(tp.sum(), fp.sum(), fn.sum())
    ap = average_precision_per_class(p, y)
    return {
        "num_samples": int(len(p)),
        "threshold": float(threshold),
        "mAP": _nan_average(ap),
        "per_class": {
            name: {
                "ap": float(ap[c]),
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(y[:, c].sum()),
            }
            for c, name in enumerate(class_names)
        },
        "micro": {"precision": float(micro_p), "recall": float(micro_r), "f1": float(micro_f1)},
        "macro": {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())},
        "exact_match": float((pred == y).all(1).mean()) if len(p) else float("nan"),
    }
