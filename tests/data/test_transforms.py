"""Transforms from the config: eval geometry against timm's, augmentations, mean/std."""

import json

import numpy as np
import pytest
import torch
from data_files import write_image
from PIL import Image

from cvpipe.config import AugmentConfig
from cvpipe.data.datasets import ImageDataset
from cvpipe.data.image_io import read_image
from cvpipe.data.transforms import (
    AUTO_AUGMENT,
    IMAGENET_MEAN,
    build_batch_mix,
    build_eval_transform,
    build_train_transform,
    denormalize,
    make_preprocess,
    resolve_mean_std,
)
from cvpipe.errors import ConfigError

UNIT = dict(mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])


def _smooth_image(height, width):
    """A smooth RGB gradient (resampling filters agree closely on it)."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    return pixels.astype(np.uint8)


@pytest.mark.parametrize("size,crop_pct,shape", [(32, 0.875, (50, 90)), (24, 1.0, (70, 40)), (16, 0.5, (20, 20))])
def test_eval_view_matches_timm(size, crop_pct, shape):
    timm_data = pytest.importorskip("timm.data")
    pixels = _smooth_image(*shape)
    aug = AugmentConfig(image_size=size, crop_pct=crop_pct, interpolation="bilinear")
    ours = build_eval_transform(make_preprocess(aug, 3, **UNIT))(torch.from_numpy(pixels).permute(2, 0, 1))
    oracle = timm_data.create_transform(size, is_training=False, crop_pct=crop_pct, interpolation="bilinear", mean=(0, 0, 0), std=(1, 1, 1))
    expected = oracle(Image.fromarray(pixels))
    assert ours.shape == expected.shape == (3, size, size) and ours.dtype == torch.float32
    assert (ours - expected).abs().mean() < 2 / 255  # PIL vs torch resampling: same geometry
    assert (ours - expected).abs().max() < 12 / 255


def test_rectangular_size_crops_without_stretching():
    pixels = torch.zeros(3, 40, 40, dtype=torch.uint8)
    pixels[:, 18:22, 18:22] = 255  # a centred square stays square
    aug = AugmentConfig(image_size=[20, 40], crop_pct=1.0, interpolation="nearest")
    out = build_eval_transform(make_preprocess(aug, 3, **UNIT))(pixels)
    assert out.shape == (3, 20, 40)
    rows, cols = (out[0] > 0.5).nonzero().unbind(1)
    assert rows.max() - rows.min() == cols.max() - cols.min()


def test_normalisation_values():
    image = torch.full((3, 10, 10), 128, dtype=torch.uint8)
    aug = AugmentConfig(image_size=8)
    mean, std = [0.5, 0.25, 0.0], [0.5, 0.25, 2.0]
    out = build_eval_transform(make_preprocess(aug, 3, mean, std))(image)
    expected = (torch.tensor([128 / 255] * 3) - torch.tensor(mean)) / torch.tensor(std)
    assert torch.allclose(out.mean((1, 2)), expected, atol=1e-6)
    assert torch.allclose(denormalize(out, make_preprocess(aug, 3, mean, std)), torch.full_like(out, 128 / 255), atol=1e-6)


def test_preprocess_is_plain_json():
    aug = AugmentConfig(image_size=[12, 16], crop_pct=0.9, interpolation="bicubic")
    pre = make_preprocess(aug, 1, [0.3], [0.2])
    assert json.loads(json.dumps(pre)) == pre
    assert pre["mode"] == "L" and pre["image_size"] == [12, 16]
    image = torch.randint(0, 256, (1, 30, 25), dtype=torch.uint8)
    assert torch.equal(build_eval_transform(pre)(image), build_eval_transform(json.loads(json.dumps(pre)))(image))


def test_deterministic_train_view_is_the_flipped_eval_view():
    image = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    aug = AugmentConfig(image_size=16, crop_pct=1.0, random_resized_crop=False, hflip=1.0, vflip=1.0)
    pre = make_preprocess(aug, 3, **UNIT)
    assert torch.equal(build_train_transform(aug, pre)(image), build_eval_transform(pre)(image).flip(-1).flip(-2))


def test_padding_modes_fill_the_border():
    image = torch.full((1, 8, 8), 200, dtype=torch.uint8)
    for mode, border in (("constant", 0.0), ("edge", 200 / 255), ("reflect", 200 / 255)):
        aug = AugmentConfig(image_size=8, crop_pct=1.0, random_resized_crop=False, hflip=0.0, padding=4, padding_mode=mode)
        pre = make_preprocess(aug, 1, [0.0], [1.0])
        torch.manual_seed(1)
        outs = torch.stack([build_train_transform(aug, pre)(image) for _ in range(20)])
        assert outs.shape == (20, 1, 8, 8)
        values = set(torch.round(outs * 255).unique().tolist())
        assert values == ({0.0, 200.0} if border == 0.0 else {200.0})


def test_each_augmentation_changes_the_image():
    image = torch.from_numpy(_smooth_image(24, 24)).permute(2, 0, 1).contiguous()
    base = dict(image_size=24, crop_pct=1.0, random_resized_crop=False, hflip=0.0)
    options = {
        "random_resized_crop": dict(random_resized_crop=True, scale=[0.2, 0.5]),
        "rotation": dict(rotation=30.0),
        "color_jitter": dict(color_jitter=[0.5, 0.5, 0.5, 0.1]),
        "random_erasing": dict(random_erasing=1.0),
    }
    plain = build_eval_transform(make_preprocess(AugmentConfig(**base), 3, **UNIT))(image)
    torch.manual_seed(0)
    for name, extra in options.items():
        aug = AugmentConfig(**{**base, **extra})
        out = build_train_transform(aug, make_preprocess(aug, 3, **UNIT))(image)
        assert out.shape == plain.shape, name
        assert not torch.allclose(out, plain, atol=1e-3), name
    erasing = AugmentConfig(**{**base, **options["random_erasing"]})
    erased = build_train_transform(erasing, make_preprocess(erasing, 3, **UNIT))(torch.full((3, 24, 24), 255, dtype=torch.uint8))
    assert (erased == 0).any() and (erased == 1).any()  # a rectangle erased to the mean (0)


@pytest.mark.parametrize("policy", AUTO_AUGMENT)
@pytest.mark.parametrize("in_chans", [3, 1])
def test_auto_augment_policies_change_grey_and_colour_images(policy, in_chans):
    image = torch.from_numpy(_smooth_image(24, 24)).permute(2, 0, 1)[:in_chans].contiguous()
    aug = AugmentConfig(image_size=24, crop_pct=1.0, random_resized_crop=False, hflip=0.0, auto_augment=policy)
    preprocess = make_preprocess(aug, in_chans, [0.0] * in_chans, [1.0] * in_chans)
    plain = build_eval_transform(preprocess)(image)
    torch.manual_seed(0)
    views = [build_train_transform(aug, preprocess)(image) for _ in range(8)]
    assert all(v.shape == plain.shape and 0.0 <= v.min() and v.max() <= 1.0 for v in views)
    assert sum(not torch.allclose(v, plain, atol=1e-3) for v in views) >= 4  # most draws change the image


def test_mixup_and_cutmix_mix_images_and_labels_by_the_same_weight():
    torch.manual_seed(0)
    images, labels = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 3, 4, 0])
    assert build_batch_mix(AugmentConfig(), 5) is None
    mixup = build_batch_mix(AugmentConfig(mixup=0.4), 5)
    mixed, soft = mixup(images, labels)
    assert soft.shape == (6, 5) and torch.allclose(soft.sum(1), torch.ones(6))
    # MixUp: image i = lam * x_i + (1 - lam) * x_(i-1), and label i carries the same lam
    lam = soft[1, 1]
    assert 0 < lam < 1 and torch.allclose(mixed, lam * images + (1 - lam) * images.roll(1, 0), atol=1e-6)
    cutmix = build_batch_mix(AugmentConfig(cutmix=1.0), 5)
    mixed, soft = cutmix(images, labels)
    # CutMix: a pasted box from the previous image; the label weight is the area kept
    from_previous = (mixed == images.roll(1, 0)).all(1)[1].float().mean()  # (H, W) -> share of pixels
    assert torch.isclose(soft[1, 0], from_previous) and torch.isclose(soft[1, 1], 1 - from_previous)
    both = build_batch_mix(AugmentConfig(mixup=0.2, cutmix=1.0), 5)
    assert both(images, labels)[1].shape == (6, 5)


def test_grey_images_accept_colour_jitter():
    aug = AugmentConfig(image_size=8, color_jitter=[0.4, 0.4, 0.4, 0.1], rotation=10)
    out = build_train_transform(aug, make_preprocess(aug, 1, [0.5], [0.5]))(torch.randint(0, 256, (1, 8, 8), dtype=torch.uint8))
    assert out.shape == (1, 8, 8)


def test_mean_std_imagenet_explicit_and_auto(tmp_path):
    paths = [write_image(tmp_path / f"{i}.png", size=(5 + i, 4), seed=i) for i in range(6)]
    dataset = ImageDataset(paths, [0] * 6, ["a"])
    assert resolve_mean_std(AugmentConfig(), None, 3) == (list(IMAGENET_MEAN), [0.229, 0.224, 0.225])
    grey_mean, _ = resolve_mean_std(AugmentConfig(), None, 1)
    assert grey_mean == [pytest.approx(sum(IMAGENET_MEAN) / 3)]
    assert resolve_mean_std(AugmentConfig(mean=[0.1, 0.2, 0.3], std=[1, 2, 3]), None, 3) == ([0.1, 0.2, 0.3], [1.0, 2.0, 3.0])
    for in_chans, mode in ((3, "RGB"), (1, "L")):
        mean, std = resolve_mean_std(AugmentConfig(mean="auto", std="auto"), dataset, in_chans)
        pixels = np.concatenate([read_image(p, mode).flatten(1).numpy().T for p in paths]) / 255.0  # every pixel once
        assert np.allclose(mean, pixels.mean(0), atol=1e-5) and np.allclose(std, pixels.std(0), atol=1e-5)


@pytest.mark.parametrize(
    "change,key",
    [
        (dict(mean=[0.5]), "augment.mean"),
        (dict(std="median"), "augment.std"),
        (dict(interpolation="lanczos"), "interpolation"),
        (dict(crop_pct=1.5), "crop_pct"),
        (dict(padding_mode="wrap"), "padding_mode"),
        (dict(hflip=2.0), "hflip"),
        (dict(scale=[0.9, 0.1]), "scale"),
        (dict(color_jitter=[0.1, 0.1, 0.1, 0.9]), "color_jitter"),
        (dict(auto_augment="randaug"), "auto_augment 'randaug': use randaugment"),
        (dict(auto_augment="augmix", aug_magnitude=11), "augmix takes 1 to 10"),
        (dict(auto_augment="augmix", aug_magnitude=0), "augmix takes 1 to 10"),
        (dict(auto_augment="randaugment", aug_magnitude=31), "randaugment takes 0 to 30"),
        (dict(mixup=-0.2), "mixup"),
    ],
)
def test_bad_settings_name_the_key(change, key):
    aug = AugmentConfig(**change)
    with pytest.raises(ConfigError, match=key):
        mean, std = resolve_mean_std(aug, None, 3)
        build_train_transform(aug, make_preprocess(aug, 3, mean, std))
