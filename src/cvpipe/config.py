"""The typed configuration: one nested dataclass tree, read from YAML plus ``a.b=value`` overrides.

Every setting has a default, so an empty file is a valid configuration. Reading is strict:
an unknown key fails with a did-you-mean suggestion, and a value of the wrong type fails naming
the key. The resolved configuration is written to each run folder and stored in every
checkpoint, so any result can be traced back to the exact settings that produced it.

Typical use::

    cfg = load_config("my.yaml", ["train.epochs=30", "model.name=resnet18"])
    cfg.train.epochs  # 30
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from cvpipe.errors import ConfigError

IntOrPair = Union[int, list[int]]


@dataclass
class AugmentConfig:
    """Image preprocessing and augmentation (torchvision.transforms.v2).

    Train view: (random-resized-crop | resize + [pad] + random crop) -> flips -> rotation ->
    colour jitter -> auto-augment policy -> tensor -> normalise -> random erasing; then, per
    batch, MixUp or CutMix (soft targets). The eval view is derived from it:
    resize the shorter side to ``image_size / crop_pct`` then centre-crop ``image_size``.
    """

    image_size: IntOrPair = 224  # network input, int (square) or [h, w]
    crop_pct: float = 0.875  # eval: resize to image_size / crop_pct, then centre crop
    interpolation: str = "bilinear"  # nearest | bilinear | bicubic
    random_resized_crop: bool = True  # False: resize as eval, then pad + random crop image_size
    scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # random-resized-crop area
    ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])  # aspect ratio range
    padding: int = 0  # random crop padding (used when random_resized_crop is False)
    padding_mode: str = "constant"  # constant | edge | reflect | symmetric
    hflip: float = 0.5  # probability
    vflip: float = 0.0  # probability
    rotation: float = 0.0  # degrees, uniform in [-rotation, rotation]
    color_jitter: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])  # b, c, s, h
    random_erasing: float = 0.0  # probability
    auto_augment: str = ""  # "" | randaugment | trivialaugment | autoaugment (ImageNet policy) | augmix
    aug_magnitude: int = 9  # randaugment magnitude (0-30) / augmix severity (1-10, 3 is usual)
    mixup: float = 0.0  # MixUp Beta(alpha, alpha) per batch (0 = off; 0.2 is common); single-label only
    cutmix: float = 0.0  # CutMix Beta(alpha, alpha) per batch (0 = off; 1.0 is common); with mixup, one of the two per batch
    mean: Union[str, list[float]] = "imagenet"  # imagenet | auto (from the training set) | list
    std: Union[str, list[float]] = "imagenet"


@dataclass
class DataConfig:
    """Where the images and labels are and how they are split.

    ``root`` is a folder, or ``digits`` for the embedded default dataset. The layout is
    detected unless given: ``folder`` (one folder per class), ``labelfile`` (an image folder
    plus a ``name label`` file) or ``pertxt`` (one label ``.txt`` beside each image).
    """

    root: str = "digits"
    layout: str = "auto"  # auto | folder | labelfile | pertxt
    images: str = ""  # labelfile/pertxt: image folder relative to root ("" = root itself)
    labels: str = ""  # labelfile: the label file (txt or csv) relative to root
    names: str = ""  # optional class-names file, one name per line
    val_split: float = 0.2  # used when root has no val/ folder (stratified, seeded)
    test_split: float = 0.0
    split_seed: int = 0
    multi_label: Optional[bool] = None  # None: detected from the labels
    threshold: float = 0.5  # multi-label decision threshold for F1 and predictions
    strict: bool = False  # fail on an unreadable image instead of skipping it
    workers: int = 2  # DataLoader worker processes
    balanced_sampling: bool = False  # weighted sampler that equalises classes
    cache: bool = False  # decode train/val images once and keep them in RAM (skipped if they do not fit)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ModelConfig:
    """Which network to build; ``kwargs`` go to the model's constructor untouched."""

    name: str = "resnet18"  # see `cvpipe models`; also tv:<name> and timm:<name>
    in_chans: int = 3  # 1 reads images as grey
    pretrained: str = ""  # path to torchvision .pth, timm/safetensors file or cvpipe checkpoint
    drop_rate: Optional[float] = None  # classifier dropout, when the model has one
    attention: str = ""  # se | cbam | srm inserted into ResNet/ResNeXt blocks
    act_layer: str = ""  # activation by name where the architecture allows
    norm_layer: str = ""  # norm by name where the architecture allows
    kwargs: dict[str, Any] = field(default_factory=dict)
    # fine-tuning
    freeze: list[str] = field(default_factory=list)  # name prefixes, or ["backbone"]
    freeze_stages: int = 0  # freeze the stem and this many stages
    freeze_bn_stats: bool = True  # frozen BatchNorm keeps running statistics (eval mode)
    unfreeze_epoch: int = 0  # train this many epochs frozen, then everything (0 = stay frozen)
    lr_groups: dict[str, float] = field(default_factory=dict)  # name prefix -> LR multiplier
    layer_decay: float = 0.0  # layer-wise LR decay (0 = off)


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adam | adamw | rmsprop | adagrad
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    decay_norm_and_bias: bool = False  # False: no weight decay on norm and bias parameters


@dataclass
class ScheduleConfig:
    """The learning rate as a pure function of the optimiser step (resume cannot drift)."""

    name: str = "cosine"  # constant | step | multistep | exponential | cosine | linear | onecycle
    warmup_epochs: float = 0.0  # linear warmup from warmup_factor * lr
    warmup_factor: float = 0.1
    step_size: float = 30.0  # step: epochs between decays
    milestones: list[float] = field(default_factory=lambda: [30.0, 60.0, 90.0])  # multistep
    gamma: float = 0.1  # step/multistep factor; exponential: per-epoch factor
    min_lr_ratio: float = 0.0  # cosine/linear end LR as a fraction of lr
    pct_start: float = 0.3  # onecycle: fraction of steps spent rising
    div_factor: float = 25.0  # onecycle: initial lr = lr / div_factor
    final_div_factor: float = 1e4  # onecycle: final lr = initial / final_div_factor


@dataclass
class LossConfig:
    name: str = "auto"  # auto (ce, or bce for multi-label) | ce | focal | bce | triplet | pkg.mod.Class
    label_smoothing: float = 0.0
    class_weights: Union[str, list[float]] = ""  # "" | balanced | explicit list
    focal_gamma: float = 2.0
    focal_alpha: Optional[float] = None
    aux_weight: float = 0.3  # weight of auxiliary classifier losses (GoogLeNet)
    # triplet: mean(clamp(|a-p|^2 - |a-n|^2, min=t1) + beta * clamp(|a-p|^2, min=t2)), Cheng et al. 2016
    triplet_t1: float = -1.0
    triplet_t2: float = 0.01
    triplet_beta: float = 0.002
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra args for a named loss class


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64  # global batch: divided across DDP processes
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "fp32"  # fp32 | fp16 | bf16
    channels_last: bool = False
    grad_accum: int = 1  # optimiser step every N batches
    clip_grad: float = 0.0  # max gradient norm (0 = off)
    ema: bool = False
    ema_decay: float = 0.9998
    patience: int = 0  # early stopping: epochs without improvement (0 = off)
    metric: str = "auto"  # best-checkpoint metric: auto (acc, or mAP for multi-label) | loss | ...
    seed: int = 0
    deterministic: bool = False
    save_period: int = 0  # also keep epoch_N.pt every N epochs (0 = off)
    resume: str = ""  # a last.pt to continue from
    project: str = "runs/train"
    name: str = "exp"
    exist_ok: bool = False  # reuse runs/train/<name> instead of auto-incrementing
    log_interval: int = 50  # plain-log line every N steps when not on a terminal


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------- building


def preset_names() -> list[str]:
    """Configurations shipped inside the package (``cvpipe/configs/*.yaml``)."""
    folder = resources.files("cvpipe") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_config(source: Union[str, Path, dict, None] = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Build a :class:`Config` from a YAML file, a preset name or a dict, then apply overrides.

    ``source`` None gives the schema defaults. ``overrides`` are ``dotted.key=value`` strings;
    values are parsed as YAML (``train.epochs=5``, ``optim.betas=[0.9,0.99]``).
    """
    data = _read_source(source)
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(data, key, value)
    return from_dict(Config, data)


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item or item.startswith("="):
        raise ConfigError(f"override {item!r} is not key=value; write it like train.epochs=10")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    return key.strip(), value


def _read_source(source) -> dict:
    if source is None:
        return {}
    if isinstance(source, dict):
        return _deep_copy(source)
    path = Path(source)
    if not path.exists() and str(source) in preset_names():
        text = (resources.files("cvpipe") / "configs" / f"{source}.yaml").read_text()
        name = f"preset {source}"
    elif path.is_file():
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"config {name}: not a UTF-8 text file; give a YAML config") from None
        except OSError as e:
            raise ConfigError(f"config {name}: cannot be read ({e.strerror})") from None
    elif path.is_dir():
        raise ConfigError(f"config {source}: is a folder, not a YAML file; to use its images, set data.root={source}")
    else:
        hint = f"; presets: {', '.join(preset_names())}" if preset_names() else ""
        raise ConfigError(f"config {source}: no such file{hint}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config {name}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {name}: expected a mapping of sections, got {type(data).__name__}")
    return data


def _deep_copy(d):
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deep_copy(v) for v in d]
    return d


def _set_dotted(data: dict, key: str, value) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key}: {part} is a value, not a section")
        node = child
    node[parts[-1]] = value


def from_dict(cls, data: dict, prefix: str = ""):
    """Validate ``data`` against dataclass ``cls`` and build it; errors name the dotted key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a section (mapping), got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in hints:
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
            hint = f"; did you mean {prefix}{close[0]}?" if close else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown config key {prefix}{key}{hint}")
        kwargs[key] = _coerce(hints[key], value, f"{prefix}{key}")
    return cls(**kwargs)


def _coerce(tp, value, key: str):
    """Check ``value`` against the annotation ``tp``; return it in canonical form."""
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, key + ".")
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key {key}: {value!r} is not {_describe(tp)}")
    if tp is Any:
        return value
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"config key {key}: {value!r} is not {_describe(tp)}")
        return [_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key}: {value!r} is not a mapping")
        return {str(k): _coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # data.root=2024 is a folder name, not a number
    raise ConfigError(f"config key {key}: {value!r} is not {_describe(tp)}")


def _describe(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is list:
        return f"a list of {_describe(args[0])}"
    if tp is type(None):
        return "null"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def to_dict(cfg) -> dict:
    """Plain nested dict (YAML- and checkpoint-safe: only builtins)."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg, path: Union[str, Path]) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")


def image_size_hw(size: IntOrPair) -> tuple[int, int]:
    """``224`` or ``[224]`` -> (224, 224); ``[h, w]`` -> (h, w)."""
    if isinstance(size, int):
        return size, size
    if len(size) == 1:
        return size[0], size[0]
    if len(size) == 2:
        return size[0], size[1]
    raise ConfigError(f"data.augment.image_size {size!r}: give one integer or [height, width]")
