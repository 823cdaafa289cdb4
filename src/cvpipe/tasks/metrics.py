"""Validation numbers computed during training (the full report is `cvpipe eval`'s job)."""

from __future__ import annotations

import torch
import torch.nn as nn

from cvpipe.engine.inference import collect_outputs


@torch.no_grad()
def validation_metrics(
    model: nn.Module,
    loader,
    criterion: nn.Module,
    device: torch.device,
    precision: str = "fp32",
    channels_last: bool = False,
    multi_label: bool = False,
    threshold: float = 0.5,
    show_progress: bool = True,
    log_every: int = 50,
) -> dict[str, float]:
    """``val/loss`` plus ``val/acc`` and ``val/top5`` (single-label) or ``val/mAP`` and
    ``val/F1`` (multi-label), over the whole validation set gathered from every rank."""
    logits, targets = collect_outputs(
        model, loader, device, precision, channels_last, desc="val", show_progress=show_progress, log_every=log_every
    )
    loss = criterion(logits.to(device), targets.to(device)).item()
    metrics = {"val/loss": loss}
    if multi_label:
        from cvpipe.engine.metrics import multilabel_report

        names = [str(c) for c in range(logits.shape[1])]
        report = multilabel_report(torch.sigmoid(logits), targets, names, threshold=threshold)
        metrics["val/mAP"] = float(report["mAP"])
        metrics["val/F1"] = float(report["macro"]["f1"])
    else:
        metrics["val/acc"] = (logits.argmax(1) == targets).float().mean().item()
        k = min(5, logits.shape[1])
        if k > 1 and k < logits.shape[1]:
            topk = logits.topk(k, dim=1).indices
            metrics["val/top5"] = (topk == targets[:, None]).any(1).float().mean().item()
    return metrics
