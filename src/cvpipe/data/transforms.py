"""Train and eval transforms from the ``data.augment`` config (torchvision.transforms.v2).

Both take a ``uint8`` tensor (C, H, W) from :func:`cvpipe.data.image_io.read_image` and return
a normalised ``float32`` tensor (C, h, w) with (h, w) = ``image_size``.

Eval view (deterministic, derived from the train settings)::

    resize shorter side to image_size / crop_pct -> centre crop image_size -> float -> normalise

(for a rectangular image_size [h, w]: resize, keeping the aspect ratio, to the smallest size
covering [h, w] / crop_pct, then centre-crop [h, w]; images are never stretched).

Train view::

    random-resized-crop(image_size, scale, ratio)
      | resize as eval -> random crop image_size (with padding, padding_mode)
    -> h/v flips -> rotation -> colour jitter -> float -> normalise -> random erasing

The non-random-resized-crop path uses the eval resize, so the eval view is exactly the centre
of the crops seen in training. Random erasing comes after normalisation and fills with 0,
the dataset mean (Zhong et al., 2017).

Everything the eval view needs is one plain dict, :func:`make_preprocess`, which checkpoints
store so that ``predict`` needs nothing else.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

import torch
from torchvision.transforms import v2

from cvpipe.config import AugmentConfig, image_size_hw
from cvpipe.data.image_io import ImageReadError, read_image
from cvpipe.errors import ConfigError, DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = {
    "nearest": v2.InterpolationMode.NEAREST,
    "nearest-exact": v2.InterpolationMode.NEAREST_EXACT,
    "bilinear": v2.InterpolationMode.BILINEAR,
    "bicubic": v2.InterpolationMode.BICUBIC,
}
PADDING_MODES = ("constant", "edge", "reflect", "symmetric")
AUTO_AUGMENT = ("randaugment", "trivialaugment", "autoaugment", "augmix")
AUTO_STATS_IMAGES = 1000  # "auto" mean/std: images sampled evenly from the training set


def resolve_mean_std(aug: AugmentConfig, train_dataset=None, in_chans: int = 3) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] units, ``in_chans`` values each.

    ``"imagenet"``: the ImageNet statistics (for grey input, the average of the three
    channels). ``"auto"``: measured on up to 1,000 training images spread evenly over the
    set, read as the model will see them (grey or RGB). A list: used as given.
    """
    measured = None
    if "auto" in (aug.mean, aug.std):
        if train_dataset is None or len(train_dataset) == 0:
            raise ConfigError("augment.mean/std 'auto' needs a training set to measure")
        measured = dataset_mean_std(train_dataset, in_chans)
    mean = _resolve_stat("mean", aug.mean, IMAGENET_MEAN, measured and measured[0], in_chans)
    std = _resolve_stat("std", aug.std, IMAGENET_STD, measured and measured[1], in_chans)
    if any(s <= 0 for s in std):
        raise ConfigError(f"data.augment.std {std}: every value must be positive")
    return mean, std


def _resolve_stat(key, value, imagenet, measured, in_chans) -> list[float]:
    _check_stat(key, value, in_chans)
    if value == "imagenet":
        return [sum(imagenet) / 3.0] if in_chans == 1 else list(imagenet)
    if value == "auto":
        return list(measured)
    return [float(v) for v in value]


def _check_stat(key: str, value, in_chans: int) -> None:
    """ConfigError for a ``data.augment.mean``/``std`` that no training set could make right."""
    if isinstance(value, str):
        if value not in ("imagenet", "auto"):
            raise ConfigError(f"data.augment.{key} {value!r}: use imagenet, auto or a list of {in_chans} numbers")
        return
    if len(value) != in_chans:
        raise ConfigError(f"data.augment.{key} has {len(value)} values but model.in_chans is {in_chans}")
    if key == "std" and any(v <= 0 for v in value):
        raise ConfigError(f"data.augment.std {list(value)}: every value must be positive")


def dataset_mean_std(dataset, in_chans: int, max_images: int = AUTO_STATS_IMAGES) -> tuple[list[float], list[float]]:
    """Pixel mean and std per channel over (a sample of) ``dataset.paths``, in [0, 1].

    Every pixel counts equally (large images weigh more), as in the normalisation itself.
    Files that cannot be read are passed over (a dataset from ``build_splits(check=True)``
    has none; an unchecked one, e.g. for a preview, may).
    """
    mode = "L" if in_chans == 1 else "RGB"
    paths = dataset.paths
    step = max(1, math.ceil(len(paths) / max_images))
    chosen = paths[::step]

    def moments(path):
        try:
            x = read_image(path, mode).to(torch.float64).div_(255.0).flatten(1)  # (C, H*W)
        except ImageReadError:
            return torch.zeros(in_chans, dtype=torch.float64), torch.zeros(in_chans, dtype=torch.float64), 0
        return x.sum(1), x.square().sum(1), x.shape[1]

    total = torch.zeros(in_chans, dtype=torch.float64)
    total_sq = torch.zeros(in_chans, dtype=torch.float64)
    count = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        for s, sq, n in pool.map(moments, chosen):
            total += s
            total_sq += sq
            count += n
    if count == 0:
        raise DataError("augment.mean/std 'auto': none of the sampled training images could be read")
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0.0).sqrt().clamp_min(1e-3)  # a flat set
    return [round(v, 6) for v in mean.tolist()], [round(v, 6) for v in std.tolist()]


def make_preprocess(aug: AugmentConfig, in_chans: int, mean: Sequence[float], std: Sequence[float]) -> dict:
    """Everything the eval view needs, as a JSON-able dict (stored in checkpoints)."""
    validate_augment(aug)
    height, width = image_size_hw(aug.image_size)
    return {
        "image_size": [height, width],
        "crop_pct": float(aug.crop_pct),
        "interpolation": aug.interpolation,
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "in_chans": int(in_chans),
        "mode": "L" if in_chans == 1 else "RGB",
    }


def build_eval_transform(preprocess: dict) -> v2.Compose:
    """uint8 (C, H, W) -> float32 (C, h, w): resize, centre crop, normalise."""
    return v2.Compose([*_eval_geometry(preprocess), *_to_normalised(preprocess)])


def build_train_transform(aug: AugmentConfig, preprocess: dict) -> v2.Compose:
    """uint8 (C, H, W) -> float32 (C, h, w) with the augmentations ``aug`` enables."""
    validate_augment(aug)
    size = preprocess["image_size"]
    interpolation = INTERPOLATIONS[preprocess["interpolation"]]
    steps: list = []
    if aug.random_resized_crop:
        crop = v2.RandomResizedCrop(size, tuple(aug.scale), tuple(aug.ratio), interpolation=interpolation, antialias=True)
        steps.append(crop)
    else:
        steps.append(_eval_geometry(preprocess)[0])  # the eval resize
        steps.append(v2.RandomCrop(size, padding=aug.padding or None, padding_mode=aug.padding_mode, pad_if_needed=True))
    if aug.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(aug.hflip))
    if aug.vflip > 0:
        steps.append(v2.RandomVerticalFlip(aug.vflip))
    if aug.rotation > 0:
        steps.append(v2.RandomRotation(aug.rotation, interpolation=interpolation))
    if any(v > 0 for v in aug.color_jitter):
        brightness, contrast, saturation, hue = aug.color_jitter
        steps.append(v2.ColorJitter(brightness, contrast, saturation, hue))
    if aug.auto_augment:
        steps.append(_auto_augment(aug, interpolation))
    steps += _to_normalised(preprocess)
    if aug.random_erasing > 0:
        steps.append(v2.RandomErasing(aug.random_erasing, value=0))
    return v2.Compose(steps)


def _auto_augment(aug: AugmentConfig, interpolation: v2.InterpolationMode):
    """The learned or random policy on uint8 images (Cubuk et al. 2019/2020, Müller and Hutter
    2021, Hendrycks et al. 2020), as in torchvision's classification reference scripts."""
    if aug.auto_augment == "randaugment":
        return v2.RandAugment(magnitude=aug.aug_magnitude, interpolation=interpolation)
    if aug.auto_augment == "trivialaugment":
        return v2.TrivialAugmentWide(interpolation=interpolation)
    if aug.auto_augment == "autoaugment":
        return v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET, interpolation=interpolation)
    return v2.AugMix(severity=aug.aug_magnitude, interpolation=interpolation)


def build_batch_mix(aug: AugmentConfig, num_classes: int):
    """MixUp (Zhang et al. 2018) and/or CutMix (Yun et al. 2019) as ``mix(images, labels) ->
    (images, soft_labels)`` on a batch: float (N, C, H, W) and int64 (N,) -> the mixed images and
    (N, num_classes) label weights; one of the two per batch when both are on. None when off.
    Draws from torch's global generator, which checkpoints save and resuming restores."""
    mixes = []
    if aug.mixup > 0:
        mixes.append(v2.MixUp(alpha=aug.mixup, num_classes=num_classes))
    if aug.cutmix > 0:
        mixes.append(v2.CutMix(alpha=aug.cutmix, num_classes=num_classes))
    if not mixes:
        return None
    return mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)


def denormalize(images: torch.Tensor, preprocess: dict) -> torch.Tensor:
    """Undo the normalisation for display: (..., C, H, W) float -> same shape in [0, 1]."""
    mean = torch.tensor(preprocess["mean"], dtype=images.dtype).view(-1, 1, 1)
    std = torch.tensor(preprocess["std"], dtype=images.dtype).view(-1, 1, 1)
    return (images * std + mean).clamp(0.0, 1.0)


class ResizeToCover:
    """Resize keeping the aspect ratio to the smallest size covering ``(height, width)``.

    For a square target this is "shorter side = size" (``v2.Resize(int)``); for a
    rectangular one, the image is scaled until both sides reach the target, so the following
    centre crop never stretches it.
    """

    def __init__(self, size: Sequence[int], interpolation: v2.InterpolationMode):
        self.size = [int(size[0]), int(size[1])]
        self.interpolation = interpolation

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        scale = max(self.size[0] / height, self.size[1] / width)
        new_size = [max(self.size[0], round(height * scale)), max(self.size[1], round(width * scale))]
        return v2.functional.resize(image, new_size, interpolation=self.interpolation, antialias=True)

    def __repr__(self) -> str:
        return f"ResizeToCover(size={self.size}, interpolation={self.interpolation.value})"


def _eval_geometry(preprocess: dict) -> list:
    """Resize (shorter side to image_size / crop_pct), then centre-crop image_size."""
    interpolation = INTERPOLATIONS[preprocess["interpolation"]]
    height, width = preprocess["image_size"]
    crop_pct = preprocess["crop_pct"]
    cover = [int(math.floor(height / crop_pct)), int(math.floor(width / crop_pct))]
    resize = v2.Resize(cover[0], interpolation=interpolation, antialias=True) if height == width else ResizeToCover(cover, interpolation)
    return [resize, v2.CenterCrop([height, width])]


def _to_normalised(preprocess: dict) -> list:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(preprocess["mean"], preprocess["std"])]


def validate_augment(aug: AugmentConfig, in_chans: Optional[int] = None) -> None:
    """ConfigError naming the key for any value torchvision would reject or misread; with
    ``in_chans``, also for a mean/std list of the wrong length or an unknown statistic name."""
    if in_chans is not None:
        _check_stat("mean", aug.mean, in_chans)
        _check_stat("std", aug.std, in_chans)
    height, width = image_size_hw(aug.image_size)
    if height <= 0 or width <= 0:
        raise ConfigError(f"data.augment.image_size {aug.image_size}: must be positive")
    if not 0.0 < aug.crop_pct <= 1.0:
        raise ConfigError(f"data.augment.crop_pct {aug.crop_pct}: must be in (0, 1]")
    if aug.interpolation not in INTERPOLATIONS:
        raise ConfigError(f"data.augment.interpolation {aug.interpolation!r}: use {', '.join(INTERPOLATIONS)}")
    if len(aug.scale) != 2 or not 0.0 < aug.scale[0] <= aug.scale[1] <= 1.0:
        raise ConfigError(f"data.augment.scale {aug.scale}: give [min, max] with 0 < min <= max <= 1")
    if len(aug.ratio) != 2 or not 0.0 < aug.ratio[0] <= aug.ratio[1]:
        raise ConfigError(f"data.augment.ratio {aug.ratio}: give [min, max] with 0 < min <= max")
    if aug.padding < 0:
        raise ConfigError(f"data.augment.padding {aug.padding}: must be >= 0")
    if aug.padding_mode not in PADDING_MODES:
        raise ConfigError(f"data.augment.padding_mode {aug.padding_mode!r}: use {', '.join(PADDING_MODES)}")
    for key in ("hflip", "vflip", "random_erasing"):
        if not 0.0 <= getattr(aug, key) <= 1.0:
            raise ConfigError(f"data.augment.{key} {getattr(aug, key)}: a probability in [0, 1]")
    if aug.rotation < 0:
        raise ConfigError(f"data.augment.rotation {aug.rotation}: degrees, >= 0")
    if aug.auto_augment and aug.auto_augment not in AUTO_AUGMENT:
        raise ConfigError(f"data.augment.auto_augment {aug.auto_augment!r}: use {', '.join(AUTO_AUGMENT)} (or nothing)")
    low, high = (1, 10) if aug.auto_augment == "augmix" else (0, 30)  # severity / RandAugment's 31 bins
    if aug.auto_augment in ("randaugment", "augmix") and not low <= aug.aug_magnitude <= high:
        raise ConfigError(f"data.augment.aug_magnitude {aug.aug_magnitude}: {aug.auto_augment} takes {low} to {high}")
    for key in ("mixup", "cutmix"):
        if getattr(aug, key) < 0:
            raise ConfigError(f"data.augment.{key} {getattr(aug, key)}: the Beta distribution's alpha, > 0 (0 turns it off)")
    jitter = aug.color_jitter
    if len(jitter) != 4 or any(v < 0 for v in jitter) or jitter[3] > 0.5:
        raise ConfigError(f"data.augment.color_jitter {jitter}: [brightness, contrast, saturation, hue], all >= 0, hue <= 0.5")

