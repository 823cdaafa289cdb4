"""The training loop: one code path for every device, precision and process count.

Per step: optional batch mixing (MixUp/CutMix) -> autocast forward (fp32 / fp16 with GradScaler / bf16) -> loss (the criterion also
weighs auxiliary heads when the model returns a tuple) / grad_accum -> backward (DDP gradient sync only on the accumulation
boundary) -> unscale, clip, optimiser step, scheduler step, EMA update. Per epoch: validate,
log, checkpoint (atomic ``last.pt``, ``best.pt`` by the chosen metric, optional periodic
copies), early stopping.

Stopping cleanly: a non-finite loss stops the run and keeps the last good checkpoint;
Ctrl-C or SIGTERM finishes the current step, writes ``last.pt`` and returns, ready to resume.
Resume is exact at epoch boundaries (deterministic mode); after a mid-epoch interruption the
interrupted epoch continues from the next batch.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from cvpipe.config import TrainConfig
from cvpipe.engine.checkpoint import save_checkpoint
from cvpipe.engine.distributed import DistInfo, all_reduce_sum
from cvpipe.engine.inference import autocast_context, to_device
from cvpipe.engine.logger import RunLogger
from cvpipe.engine.progress import Progress, format_seconds
from cvpipe.engine.reproducibility import capture_rng, restore_rng
from cvpipe.utils import unwrap

OptimizerFactory = Callable[[nn.Module], tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]]


class TrainHooks:
    """Task-specific adjustments the loop calls at fixed points; the defaults do nothing."""

    def set_epoch(self, epoch: int) -> bool:
        """Adjust which parameters train in ``epoch`` (e.g. unfreeze). True if that changed."""
        return False

    def after_train_mode(self, model: nn.Module) -> None:
        """Called after ``model.train()``; e.g. keep frozen BatchNorm layers in eval mode."""


@dataclass
class TrainState:
    epoch: int = 0  # completed epochs
    epoch_step: int = 0  # batches done in an interrupted epoch (0 at an epoch boundary)
    # (loss sum, correct, samples) of those batches over all ranks, so the resumed epoch's
    # train/loss and train/acc cover the whole epoch, as in an uninterrupted run
    epoch_sums: tuple[float, float, float] = (0.0, 0.0, 0.0)
    step: int = 0  # optimiser steps
    best: Optional[float] = None
    best_epoch: int = -1
    bad_epochs: int = 0  # epochs since the last improvement (early stopping)


@dataclass
class TrainResult:
    run_dir: Optional[Path]
    best: Optional[float]
    best_epoch: int
    metric: str
    epochs_done: int
    stopped: str = ""  # "" | early-stop | interrupted | non-finite
    last_metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


class NonFiniteLoss(RuntimeError):
    pass


class Trainer:
    def __init__(
        self,
        *,
        model: nn.Module,
        criterion: Callable,
        make_optimizer: OptimizerFactory,
        train_loader,
        evaluate: Callable[[nn.Module], dict[str, float]],
        cfg: TrainConfig,
        device: torch.device,
        dist_info: DistInfo,
        run_dir: Optional[Path],
        logger: RunLogger,
        metric: str,
        metric_mode: str,
        checkpoint_extra: dict[str, Any],
        ema_factory: Optional[Callable[[nn.Module], Any]] = None,
        hooks: Optional[TrainHooks] = None,
        batch_mix: Optional[Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]] = None,
    ):
        self.cfg = cfg
        self.device = device
        self.dist = dist_info
        self.run_dir = run_dir
        self.log = logger
        self.criterion = criterion
        self.make_optimizer = make_optimizer
        self.train_loader = train_loader
        self.evaluate = evaluate
        self.metric, self.metric_mode = metric, metric_mode
        self.extra = checkpoint_extra
        self.hooks = hooks or TrainHooks()
        self.batch_mix = batch_mix  # MixUp/CutMix: (images, labels) -> (mixed images, soft labels)
        self.state = TrainState()
        self.accum = max(1, cfg.grad_accum)

        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.to(device)
        self.ema = ema_factory(self.model) if ema_factory else None
        self.ddp = (
            DistributedDataParallel(self.model, device_ids=[device] if device.type == "cuda" else None)
            if dist_info.distributed
            else self.model
        )
        fp16 = cfg.precision == "fp16"
        self.scaler = torch.amp.GradScaler(device.type, enabled=fp16 and device.type in ("cuda", "cpu"))
        self.optimizer, self.scheduler = make_optimizer(self.model)
        self._stop_requested = False
        self._epoch_start_rng: dict[str, Any] = {}
        self._resume_rng: dict[str, Any] = {}

    # ----------------------------------------------------------------- resume

    def resume_from(self, ckpt: dict[str, Any]) -> None:
        """Restore everything ``_checkpoint_state`` saved; the next ``fit`` continues the run."""
        unwrap(self.model).load_state_dict(ckpt["model"])
        s = self.state
        s.epoch, s.epoch_step, s.step = ckpt["epoch"], ckpt.get("epoch_step", 0), ckpt["step"]
        s.epoch_sums = tuple(ckpt.get("epoch_sums", (0.0, 0.0, 0.0)))
        s.best, s.best_epoch, s.bad_epochs = ckpt.get("best"), ckpt.get("best_epoch", -1), ckpt.get("bad_epochs", 0)
        # The optimiser in the file was built for the trainable set of the epoch it was saved in.
        saved_in = s.epoch if s.epoch_step else max(s.epoch - 1, 0)
        if self.hooks.set_epoch(saved_in):
            self.optimizer, self.scheduler = self.make_optimizer(self.model)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict(ckpt["ema"])
        rng = ckpt.get("rng", {})
        self._resume_rng = rng
        if not s.epoch_step:
            restore_rng(rng.get("now", {}), self._loader_generator())

    # ----------------------------------------------------------------- loop

    def fit(self) -> TrainResult:
        cfg, s = self.cfg, self.state
        start = time.perf_counter()
        first_epoch = s.epoch
        last_metrics: dict[str, float] = {}
        stopped = ""
        with self._signal_guard():
            if s.epoch >= cfg.epochs:
                self.log.info(f"nothing to do: {s.epoch} of train.epochs={cfg.epochs} already done")
            for epoch in range(s.epoch, cfg.epochs):
                if self.hooks.set_epoch(epoch):
                    self._rebuild_optimizer()
                    self.log.info(f"epoch {epoch + 1}: trainable parameters changed; optimiser rebuilt")
                try:
                    train_metrics = self._train_one_epoch(epoch)
                except NonFiniteLoss as e:
                    self.log.info(f"stopped: {e}. The last good checkpoint is kept; lower optim.lr or use train.clip_grad.")
                    stopped = "non-finite"
                    break
                if self._stop_requested:
                    self._save(last=True)
                    stopped = "interrupted"
                    break
                val_metrics = self.evaluate(self.ema.module if self.ema is not None else self.model)
                s.epoch, s.epoch_step = epoch + 1, 0
                metrics = {**train_metrics, **val_metrics, "lr": self.optimizer.param_groups[0]["lr"]}
                improved = self._update_best(metrics.get(self.metric))
                last_metrics = metrics
                self.log.log_epoch(s.epoch, metrics)
                self._report_epoch(metrics, improved, s.epoch - first_epoch, time.perf_counter() - start)
                self._save(last=True, best=improved)
                if cfg.save_period and s.epoch % cfg.save_period == 0:
                    self._save(path_name=f"epoch_{s.epoch}.pt")
                if cfg.patience and s.bad_epochs >= cfg.patience:
                    self.log.info(f"early stop: {self.metric} has not improved for {cfg.patience} epochs")
                    stopped = "early-stop"
                    break
                if self._stop_requested:
                    stopped = "interrupted"
                    break
        return TrainResult(
            run_dir=self.run_dir,
            best=s.best,
            best_epoch=s.best_epoch,
            metric=self.metric,
            epochs_done=s.epoch,
            stopped=stopped,
            last_metrics=last_metrics,
            seconds=time.perf_counter() - start,
        )

    def _train_one_epoch(self, epoch: int) -> dict[str, float]:
        cfg, s = self.cfg, self.state
        loader = self.train_loader
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        skip = s.epoch_step  # resuming inside an interrupted epoch
        if skip:
            restore_rng(self._resume_rng.get("epoch_start", {}), self._loader_generator())
        self._epoch_start_rng = capture_rng(self._loader_generator())
        self.model.train()
        self.hooks.after_train_mode(self.model)

        # Rank 0 carries the sums of the batches done before an interruption; the all-reduce at
        # the end adds them to every rank's own.
        carried = s.epoch_sums if skip and self.dist.is_main else (0.0, 0.0, 0.0)
        loss_sum, correct, seen = (torch.tensor(v, device=self.device) for v in carried)
        progress = Progress(
            loader,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            enabled=self.dist.is_main,
            log_every=cfg.log_interval,
            logger=self.log.log,
            unit="batch",
        )
        n_batches = len(loader)
        for i, (images, targets) in enumerate(progress):
            if i < skip:  # fast-forward: same data order and augmentation draws as before
                if i == skip - 1:
                    restore_rng(self._resume_rng.get("now", {}))
                continue
            images = to_device(images, self.device, cfg.channels_last)
            targets = labels = targets.to(self.device, non_blocking=True)
            if self.batch_mix is not None:  # train/acc stays measured against each image's own label
                images, targets = self.batch_mix(images, labels)
            boundary = (i + 1) % self.accum == 0 or i + 1 == n_batches
            # Each step averages over the batches it accumulates; the epoch's last group may be short.
            group = min(self.accum, n_batches - (i // self.accum) * self.accum)
            sync = boundary or not self.dist.distributed
            with self.ddp.no_sync() if not sync else contextlib.nullcontext():
                with autocast_context(self.device, cfg.precision):
                    outputs = self.ddp(images)
                    loss = self.criterion(outputs, targets)
                    logits = outputs[0] if isinstance(outputs, (tuple, list)) else outputs  # drop aux heads
                self.scaler.scale(loss / group).backward()
            # Checked on every rank together, so all of them stop at the same step.
            if all_reduce_sum((~torch.isfinite(loss.detach())).float()).item() > 0:
                raise NonFiniteLoss(f"loss became {loss.item()} at epoch {epoch + 1}, batch {i + 1}")
            if boundary:
                self._optimizer_step()
            batch = images.shape[0]
            loss_sum += loss.detach().float() * batch
            seen += batch
            if labels.ndim == 1:
                correct += (logits.detach().argmax(1) == labels).sum()
            s.epoch_step = i + 1
            progress.update(loss=loss_sum.item() / seen.item(), lr=self.optimizer.param_groups[0]["lr"])
            if self._should_stop():  # every rank is here: sum for the checkpoint, then stop
                s.epoch_sums = tuple(all_reduce_sum(torch.stack([loss_sum, correct, seen])).tolist())
                return {}
        totals = all_reduce_sum(torch.stack([loss_sum, correct, seen]))
        if totals[2] == 0:  # resumed after the epoch's last batch: nothing left to measure
            return {}
        metrics = {"train/loss": (totals[0] / totals[2]).item()}
        if labels.ndim == 1:
            metrics["train/acc"] = (totals[1] / totals[2]).item()
        return metrics

    def _optimizer_step(self) -> None:
        if self.cfg.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.state.step += 1
        if self.ema is not None:
            self.ema.update(self.model)

    def _rebuild_optimizer(self) -> None:
        """New optimiser for a changed trainable set; per-parameter state (momentum) carries over."""
        old = self.optimizer
        self.optimizer, self.scheduler = self.make_optimizer(self.model)
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if p in old.state:
                    self.optimizer.state[p] = old.state[p]
        self.scheduler.set_step(self.state.step)

    def _update_best(self, value: Optional[float]) -> bool:
        s = self.state
        if value is None or (isinstance(value, float) and math.isnan(value)):
            s.bad_epochs += 1
            return False
        better = s.best is None or (value > s.best if self.metric_mode == "max" else value < s.best)
        if better:
            s.best, s.best_epoch, s.bad_epochs = float(value), s.epoch, 0
        else:
            s.bad_epochs += 1
        return better

    def _report_epoch(self, metrics: dict[str, float], improved: bool, done: int, elapsed: float) -> None:
        s = self.state
        eta = format_seconds(elapsed / max(done, 1) * (self.cfg.epochs - s.epoch))
        shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k != "lr")
        star = " *" if improved else ""
        self.log.info(f"epoch {s.epoch}/{self.cfg.epochs} {shown} lr={metrics['lr']:.3g} | ETA {eta}{star}")

    # ----------------------------------------------------------------- checkpoints

    def _loader_generator(self) -> Optional[torch.Generator]:
        return getattr(self.train_loader, "generator", None)

    def _checkpoint_state(self) -> dict[str, Any]:
        s = self.state
        return {
            "model": unwrap(self.model).state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": s.epoch,
            "epoch_step": s.epoch_step,
            "epoch_sums": list(s.epoch_sums) if s.epoch_step else [0.0, 0.0, 0.0],
            "step": s.step,
            "best": s.best,
            "best_epoch": s.best_epoch,
            "bad_epochs": s.bad_epochs,
            "metric": self.metric,
            "rng": {"now": capture_rng(self._loader_generator()), "epoch_start": self._epoch_start_rng},
            **self.extra,
        }

    def _save(self, last: bool = False, best: bool = False, path_name: str = "") -> None:
        if not self.dist.is_main or self.run_dir is None:
            return
        weights = self.run_dir / "weights"
        state = self._checkpoint_state()
        if last:
            save_checkpoint(state, weights / "last.pt")
        if path_name:
            save_checkpoint(state, weights / path_name)
        if best:  # what evaluation and prediction need; no optimiser state
            keep = ("model", "ema", "epoch", "step", "best", "best_epoch", "metric")
            save_checkpoint({k: state[k] for k in keep} | self.extra, weights / "best.pt")

    # ----------------------------------------------------------------- signals

    def _should_stop(self) -> bool:
        if self.dist.distributed:  # every rank must agree, or the next collective hangs
            flag = torch.tensor(float(self._stop_requested), device=self.device)
            self._stop_requested = bool(all_reduce_sum(flag).item() > 0)
        return self._stop_requested

    def _signal_guard(self):
        trainer = self

        class Guard:
            def __enter__(self):
                self.previous = {}
                if threading.current_thread() is not threading.main_thread():
                    return self
                for sig in (signal.SIGINT, signal.SIGTERM):
                    self.previous[sig] = signal.getsignal(sig)
                    signal.signal(sig, self.handle)
                return self

            def handle(self, signum, frame):
                if trainer._stop_requested and signum == signal.SIGINT:
                    raise KeyboardInterrupt  # a second Ctrl-C stops at once
                trainer._stop_requested = True
                trainer.log.info(f"{signal.Signals(signum).name}: finishing this step, then saving last.pt")

            def __exit__(self, *exc):
                for sig, handler in self.previous.items():
                    signal.signal(sig, handler)
                return False  # never swallow an exception

        return Guard()

