"""``cvpipe train``: build data, model, loss and optimiser from a config and run the trainer.

    result = cvpipe.train("my.yaml", ["train.epochs=30"])
    result.run_dir, result.best

Launched with ``torchrun --nproc_per_node=N``, the same call trains with DDP: rank 0 checks the
data and owns the run folder; every rank trains on its shard of each batch.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn

from cvpipe.config import Config, dump_yaml, load_config, to_dict
from cvpipe.engine.checkpoint import load_checkpoint
from cvpipe.engine.distributed import (
    barrier,
    broadcast_object,
    env_dist_info,
    init_distributed,
    select_device,
    shutdown_distributed,
)
from cvpipe.engine.logger import RunLogger
from cvpipe.engine.reproducibility import seed_everything
from cvpipe.engine.trainer import Trainer, TrainHooks, TrainResult
from cvpipe.errors import CheckpointError, ConfigError
from cvpipe.tasks.common import build_model, increment_run_dir
from cvpipe.tasks.metrics import validation_metrics

ConfigSource = Union[Config, str, Path, dict, None]


def resolve_train_config(config: ConfigSource = None, overrides: Sequence[str] = ()) -> Config:
    """The config a run uses.

    Without ``config``: the ``digits`` preset when training on the embedded digits, else the
    schema defaults (a ResNet-18 on 224 px RGB images), which suit a folder of photos.
    ``resume=PATH`` (or ``train.resume=PATH``) starts from the checkpoint's own config; other
    overrides apply on top (e.g. more ``train.epochs``)."""
    overrides = [("train." + o) if o.startswith("resume=") else o for o in overrides]
    resume = next((o.split("=", 1)[1] for o in overrides if o.startswith("train.resume=")), "")
    if isinstance(config, Config):
        if overrides:
            config = to_dict(config)
        else:
            return config
    if resume:
        saved = load_resume_checkpoint(resume, need=("config",))["config"]
        cfg = load_config(saved, overrides)
        _check_resume_keeps_structure(resume, saved, cfg)
        return cfg
    if config is None:
        config = "digits" if _data_root(overrides) == "digits" else {}
    return load_config(config, overrides)


# Settings the weights and the optimiser state in last.pt were built for: changing one on resume
# cannot load them (another architecture, other parameter groups), so it is refused up front.
RESUME_FIXED = (
    ("model", ("name", "in_chans", "attention", "act_layer", "norm_layer", "kwargs", "freeze", "freeze_stages",
               "unfreeze_epoch", "lr_groups", "layer_decay")),
    ("optim", ("name", "decay_norm_and_bias")),
)


def _check_resume_keeps_structure(path: str, saved: dict, cfg: Config) -> None:
    resolved = to_dict(cfg)
    baseline = to_dict(load_config(saved))
    for section, keys in RESUME_FIXED:
        for key in keys:
            before, after = baseline[section][key], resolved[section][key]
            if before != after:
                raise ConfigError(
                    f"resume={path}: {section}.{key} cannot change when resuming (the run has {before!r}, "
                    f"asked for {after!r}); resume without it, or start a new run from these weights with "
                    f"model.pretrained={path}"
                )


RESUME_KEYS = ("model", "optimizer", "scheduler", "epoch", "step", "config", "classes", "preprocess")


def load_resume_checkpoint(path: Union[str, Path], need: Sequence[str] = RESUME_KEYS) -> dict:
    """A training checkpoint holding ``need`` (by default all that resuming restores), or a
    CheckpointError saying why it cannot be resumed."""
    ckpt = load_checkpoint(path, in_run_folder="last.pt")
    if "config" not in ckpt:
        raise CheckpointError(f"{path}: not a cvpipe training checkpoint (no config inside); resume needs a run's weights/last.pt")
    missing = [k for k in need if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"{path}: cannot be resumed (no {', '.join(missing)} inside; best.pt keeps only the weights); "
            f"resume from the run's weights/last.pt, or start a new run from these weights with model.pretrained={path}"
        )
    return ckpt


def _data_root(overrides: Sequence[str]) -> str:
    """The data.root an override list sets (the last one wins), else the default "digits"."""
    roots = [o.split("=", 1)[1] for o in overrides if o.startswith("data.root=")]
    return roots[-1] if roots else "digits"


def train(config: ConfigSource = None, overrides: Sequence[str] = ()) -> TrainResult:
    """Train a classifier. ``config``: a Config, YAML path, preset name or dict (default: digits)."""
    cfg = resolve_train_config(config, overrides)
    info = env_dist_info()
    device = select_device(cfg.train.device, info.local_rank)
    init_distributed(device, info)
    try:
        return _train(cfg, info, device)
    finally:
        shutdown_distributed()


def _train(cfg: Config, info, device: torch.device) -> TrainResult:
    t = cfg.train
    check_config(cfg, info.world_size)
    seed_everything(t.seed + info.rank, t.deterministic)
    resume_ckpt = load_resume_checkpoint(t.resume) if t.resume else None

    # Rank 0 owns the run folder. A new one is removed again when the run fails before training
    # starts (no validation images, an image too small for the model, Ctrl-C during the file
    # check): the corrected command gets the same name, and no run without weights is left.
    run_dir, fresh = None, False
    if info.is_main:
        if t.resume:
            run_dir = Path(t.resume).resolve().parent.parent
        else:
            fresh = not (t.exist_ok and (Path(t.project) / t.name).is_dir())
            run_dir = increment_run_dir(t.project, t.name, t.exist_ok)
    logger = RunLogger(run_dir, enabled=info.is_main)
    try:
        with _terminate_as_interrupt():
            trainer = _prepare(cfg, info, device, run_dir, logger, resume_ckpt)
    except BaseException:
        logger.close()
        if fresh:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    result = trainer.fit()
    barrier()
    if info.is_main:
        _finish(result, run_dir, logger)
    logger.close()
    return result


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (``kill``, a job scheduler) during set-up unwinds like Ctrl-C, so the new run
    folder is removed and the user is told; the trainer installs its own handler for fit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _prepare(cfg: Config, info, device: torch.device, run_dir: Optional[Path], logger: RunLogger, resume_ckpt):
    """Data, model, loss, optimiser and the Trainer, ready to fit (resumed if ``resume_ckpt``).
    Rank 0 checks every file once and writes the run's config; the others receive the result."""
    from cvpipe.data.cache import cache_datasets
    from cvpipe.data.datasets import build_splits
    from cvpipe.data.loaders import build_loader, class_counts
    from cvpipe.data.transforms import build_batch_mix, build_eval_transform, build_train_transform, make_preprocess, resolve_mean_std
    from cvpipe.engine.losses import build_loss, class_weights_from_config
    from cvpipe.engine.optim import build_optimizer
    from cvpipe.engine.schedules import build_scheduler
    from cvpipe.models import check_input_size, finetune
    from cvpipe.models.weights import load_pretrained

    t = cfg.train
    if info.is_main:
        logger.info(f"run folder: {run_dir}")
        splits = build_splits(cfg.data, cfg.model.in_chans)
        if cfg.data.root != "digits":  # stored absolute, so eval finds the data from any folder
            cfg.data.root = str(splits.root.resolve())
        logger.info(f"data: {splits.describe()}")
        if not splits.multi_label and len(splits.classes) < 2:
            found = f"only one class ({splits.classes[0]})" if splits.classes else "no classes"
            raise ConfigError(
                f"data.root {cfg.data.root}: {found}; a classifier needs at least 2 classes "
                "(one folder, or one label, per class)"
            )
        for warning in splits.warnings:
            logger.warning(warning)
        if splits.skipped:
            report = splits.write_report(run_dir)
            logger.warning(f"{len(splits.skipped)} unusable files skipped; the list with reasons is in {report}")
        if resume_ckpt is not None and list(resume_ckpt.get("classes", [])) != list(splits.classes):
            raise CheckpointError(f"{t.resume}: its classes differ from the data's; resume with the same data")
        fingerprint = splits.fingerprint()
        change = splits.change_since(resume_ckpt.get("data")) if resume_ckpt is not None else None
        if change:
            logger.warning(f"resume: the images differ from the run's ({change}); training continues on the data as it is now")
        mean, std = resolve_mean_std(cfg.data.augment, splits.train, cfg.model.in_chans)
        preprocess = make_preprocess(cfg.data.augment, cfg.model.in_chans, mean, std)
        if resume_ckpt is not None:
            preprocess = dict(resume_ckpt["preprocess"])  # "auto" statistics must not drift
        dump_yaml(cfg, run_dir / "config.yaml")
        (run_dir / "classes.txt").write_text("\n".join(splits.classes) + "\n", encoding="utf-8")
        payload = (run_dir, splits, preprocess, fingerprint)
    else:
        payload = None
    run_dir, splits, preprocess, fingerprint = broadcast_object(payload)
    if not info.is_main:
        run_dir = None  # only rank 0 writes

    if splits.val is None or len(splits.val) == 0:
        raise ConfigError(f"no validation images: {_why_no_validation(cfg.data)}")
    splits.train.transform = build_train_transform(cfg.data.augment, preprocess)
    splits.val.transform = build_eval_transform(preprocess)
    per_rank_batch = t.batch_size // info.world_size
    train_loader = build_loader(
        splits.train,
        per_rank_batch,
        train=True,
        workers=cfg.data.workers,
        seed=t.seed,
        distributed=info.distributed,
        balanced=cfg.data.balanced_sampling,
    )
    val_loader = build_loader(
        splits.val, per_rank_batch, train=False, workers=cfg.data.workers, seed=t.seed, distributed=info.distributed
    )

    num_classes = len(splits.classes)
    model = build_model(cfg, num_classes)
    # An image too small for the network's pooling fails here, in one line, not mid-epoch.
    check_input_size(model, (1, cfg.model.in_chans, *preprocess["image_size"]), setting="data.augment.image_size", name=cfg.model.name)
    report = None
    if cfg.model.pretrained and resume_ckpt is None:
        report = load_pretrained(model, cfg.model.pretrained)
        logger.info(str(report))
        if run_dir is not None:
            report.write(run_dir / "pretrained_load_report.json")
    hooks = _FinetuneHooks(model, cfg, finetune)
    hooks.freeze_initial()
    if report is not None and hooks.frozen:
        _warn_frozen_at_init(model, report, cfg.model.unfreeze_epoch, logger)

    aug = cfg.data.augment
    if (aug.mixup or aug.cutmix) and splits.multi_label:
        raise ConfigError("data.augment.mixup/cutmix mix one label per image; this data is multi-label, so leave them at 0")
    batch_mix = build_batch_mix(aug, num_classes)
    class_weights = class_weights_from_config(cfg.loss, class_counts(splits.train)) if cfg.loss.class_weights else None
    criterion = build_loss(cfg.loss, splits.multi_label, class_weights).to(device)
    if cfg.data.cache:  # after every check that can refuse the run (decoding may take minutes); each process its own copy
        cached, message = cache_datasets([splits.train, splits.val], int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
        (logger.info if cached else logger.warning)(message)

    steps_per_epoch = math.ceil(len(train_loader) / max(1, t.grad_accum))

    def make_optimizer(m: nn.Module):
        scale = finetune.lr_scale_fn(m, cfg.model.lr_groups, cfg.model.layer_decay)
        optimizer = build_optimizer(m, cfg.optim, scale)
        return optimizer, build_scheduler(optimizer, cfg.schedule, steps_per_epoch, t.epochs)

    metric, mode = _best_metric(t.metric, splits.multi_label, num_classes)

    def evaluate(m: nn.Module) -> dict[str, float]:
        return validation_metrics(
            m, val_loader, criterion, device, t.precision, t.channels_last, splits.multi_label, cfg.data.threshold,
            show_progress=info.is_main, log_every=t.log_interval,
        )

    ema_factory = None
    if t.ema:
        from cvpipe.engine.ema import ModelEMA

        ema_factory = lambda m: ModelEMA(m, decay=t.ema_decay)  # noqa: E731

    trainer = Trainer(
        model=model,
        criterion=criterion,
        make_optimizer=make_optimizer,
        train_loader=train_loader,
        evaluate=evaluate,
        cfg=t,
        device=device,
        dist_info=info,
        run_dir=run_dir,
        logger=logger,
        metric=metric,
        metric_mode=mode,
        checkpoint_extra={
            "config": to_dict(cfg),
            "classes": list(splits.classes),
            "preprocess": preprocess,
            "multi_label": bool(splits.multi_label),
            "data": fingerprint,
        },
        ema_factory=ema_factory,
        hooks=hooks,
        batch_mix=batch_mix,
    )
    if t.precision == "fp16" and device.type == "cpu":
        logger.warning("train.precision=fp16 on the CPU is usually many times slower than fp32 (few CPUs compute in fp16); use fp32, or bf16 on a recent CPU")
    if resume_ckpt is not None:
        trainer.resume_from(resume_ckpt)
        logger.info(f"resumed from {t.resume} at epoch {trainer.state.epoch} (step {trainer.state.step})")
    logger.info(
        f"training {cfg.model.name} on {len(splits.train)} images ({num_classes} classes), "
        f"validating on {len(splits.val)}; device {device}, {info.world_size} process(es), {t.precision}"
    )
    return trainer


def _why_no_validation(data_cfg) -> str:
    if data_cfg.val_split == 0:
        return "there is no val/ folder or val label file and data.val_split is 0; add one or set data.val_split above 0"
    return (
        f"each class gives round(images x data.val_split={data_cfg.val_split:g}) to validation, which is 0 for "
        "every class here (or all of them were unreadable); add images, a val/ folder, or raise data.val_split"
    )


def _warn_frozen_at_init(model: nn.Module, report, unfreeze_epoch: int, logger) -> None:
    """Parameters the pretrained file did not provide (``model.attention`` blocks, a reshaped layer)
    keep their random initialisation; frozen as well, they never learn. Say so, by name."""
    at_init = (set(report.missing) | {m["key"] for m in report.shape_mismatch}) - set(report.head_reset)
    frozen = [n for n, p in model.named_parameters() if n in at_init and not p.requires_grad]
    if not frozen:
        return
    shown = ", ".join(frozen[:4]) + (f", ... ({len(frozen) - 4} more)" if len(frozen) > 4 else "")
    until = f"until epoch {unfreeze_epoch + 1}" if unfreeze_epoch else "for the whole run"
    logger.warning(f"{len(frozen)} frozen parameters are not in {report.source} and stay at their random "
                   f"initialisation {until}: {shown}; leave them out of model.freeze or set model.unfreeze_epoch")


class _FinetuneHooks(TrainHooks):
    """Freezing from the config, unfreezing at ``model.unfreeze_epoch``, frozen BN kept in eval."""

    def __init__(self, model: nn.Module, cfg: Config, finetune):
        self.model, self.m, self.finetune = model, cfg.model, finetune
        self.frozen = False

    def freeze_initial(self) -> None:
        if self.m.freeze or self.m.freeze_stages:
            self.finetune.freeze(
                self.model, prefixes=self.m.freeze, stages=self.m.freeze_stages, bn_stats_frozen=self.m.freeze_bn_stats
            )
            self.frozen = True

    def set_epoch(self, epoch: int) -> bool:
        if self.frozen and self.m.unfreeze_epoch and epoch >= self.m.unfreeze_epoch:
            self.finetune.unfreeze(self.model)
            self.frozen = False
            return True
        return False

    def after_train_mode(self, model: nn.Module) -> None:
        if self.frozen:
            self.finetune.keep_frozen_bn_eval(model)


def _best_metric(name: str, multi_label: bool, num_classes: int) -> tuple[str, str]:
    if name == "auto":
        name = "val/mAP" if multi_label else "val/acc"
    name = name.removeprefix("val/")
    kind = "multi-label" if multi_label else "single-label"
    if name not in BEST_METRICS[multi_label] or (name == "top5" and num_classes <= 5):
        usable = [n for n in BEST_METRICS[multi_label] if n != "top5" or num_classes > 5]
        raise ConfigError(f"train.metric={name}: not measured for {kind} data with {num_classes} classes; use {', '.join(usable)}")
    return f"val/{name}", ("min" if name == "loss" else "max")


BEST_METRICS = {False: ("loss", "acc", "top5"), True: ("loss", "mAP", "F1")}  # by multi_label


def check_config(cfg: Config, world_size: int = 1) -> None:
    """ConfigError naming the key for a setting no data could make right (a bad value, an
    unknown model), found without reading any file, before a run folder is created."""
    from cvpipe.data.datasets import check_data_config
    from cvpipe.data.transforms import validate_augment
    from cvpipe.engine.losses import check_loss_config
    from cvpipe.engine.optim import check_optim_config
    from cvpipe.engine.schedules import validate_schedule
    from cvpipe.models.registry import check_model_name

    t, m = cfg.train, cfg.model
    if t.precision not in ("fp32", "fp16", "bf16"):
        raise ConfigError(f"train.precision={t.precision!r}: use fp32, fp16 or bf16")
    if t.device.strip().lower() != "auto":  # whether it is present is checked when training starts
        try:
            torch.device(t.device.strip().lower())
        except RuntimeError:
            raise ConfigError(f"train.device {t.device!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if t.epochs < 1:
        raise ConfigError("train.epochs must be at least 1")
    if t.batch_size < 1:
        raise ConfigError(f"train.batch_size={t.batch_size}: must be at least 1")
    if t.batch_size % world_size:
        raise ConfigError(f"train.batch_size={t.batch_size} must divide evenly over {world_size} processes")
    if t.grad_accum < 1:
        raise ConfigError("train.grad_accum must be at least 1")
    for key in ("clip_grad", "patience", "save_period"):
        if getattr(t, key) < 0:
            raise ConfigError(f"train.{key}={getattr(t, key)}: must be >= 0 (0 turns it off)")
    if t.log_interval < 1:
        raise ConfigError(f"train.log_interval={t.log_interval}: must be at least 1")
    if t.ema and not 0.0 <= t.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay={t.ema_decay}: must be in [0, 1)")
    metric = t.metric.removeprefix("val/")
    if metric != "auto" and metric not in BEST_METRICS[False] + BEST_METRICS[True]:
        raise ConfigError(f"train.metric={t.metric!r}: use auto, {', '.join(dict.fromkeys(BEST_METRICS[False] + BEST_METRICS[True]))}")
    if m.drop_rate is not None and not 0.0 <= m.drop_rate < 1.0:
        raise ConfigError(f"model.drop_rate={m.drop_rate}: a probability in [0, 1)")
    check_model_name(m.name)
    check_optim_config(cfg.optim)
    validate_schedule(cfg.schedule, steps_per_epoch=1, epochs=t.epochs)  # steps known after the data scan
    check_loss_config(cfg.loss)
    if (cfg.data.augment.mixup or cfg.data.augment.cutmix) and cfg.loss.name not in ("auto", "ce") and "." not in cfg.loss.name:
        raise ConfigError(f"data.augment.mixup/cutmix give soft targets, which loss.name={cfg.loss.name} cannot take; use ce")
    if m.pretrained and not t.resume and not Path(m.pretrained).expanduser().is_file():
        raise ConfigError(f"model.pretrained={m.pretrained}: no such file; give the path of a .pt, .pth or .safetensors weights file")
    check_data_config(cfg.data, m.in_chans)
    validate_augment(cfg.data.augment, m.in_chans)


def _finish(result: TrainResult, run_dir: Path, logger: RunLogger) -> None:
    from cvpipe.viz.classification import plot_training_curves

    if logger.metrics_csv is not None and logger.metrics_csv.exists():
        plot_training_curves(logger.metrics_csv, run_dir / "curves.png")
    if result.stopped == "interrupted":
        logger.info(f"interrupted; continue with: cvpipe train resume={run_dir / 'weights' / 'last.pt'}")
    logger.info(f"done in {result.seconds:.0f}s. run folder: {run_dir}")
    best_pt = run_dir / "weights" / "best.pt"
    if result.best is not None and best_pt.exists():
        logger.info(f"best {result.metric}: {result.best:.4f} (epoch {result.best_epoch}); weights: {best_pt}")
    else:  # stopped before the first validation
        logger.info("no epoch finished, so there is no best.pt yet")
