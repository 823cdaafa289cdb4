"""Feature-map capture and grids; CAM overlays, raw maps, grids and galleries written to disk."""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from cvpipe.errors import ConfigError
from cvpipe.explain import (
    cam_gallery,
    capture_features,
    channel_energy,
    compute_cam,
    list_layers,
    save_cam_grid,
    save_cam_outputs,
    save_feature_grid,
)
from cvpipe.explain.features import upsample_channels


def open_png(path, min_size=(32, 32)):
    """Open a written PNG and check it is a real, non-blank picture."""
    with Image.open(path) as im:
        assert im.format == "PNG"
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape[0] >= min_size[0] and pixels.shape[1] >= min_size[1]
    assert pixels.std() > 5  # not a constant image
    return pixels


def test_capture_features_equals_running_the_prefix(small_cnn):
    x = torch.randn(2, 3, 16, 16)
    feats = capture_features(small_cnn, x, ["features.0", "features.2"])
    assert list(feats) == ["features.0", "features.2"]
    with torch.no_grad():
        assert torch.allclose(feats["features.0"], small_cnn.features[0](x))
        assert torch.allclose(feats["features.2"], small_cnn.features(x))
    with pytest.raises(ConfigError, match="not a module"):
        capture_features(small_cnn, x, "nope")


def test_capture_features_lays_tokens_on_the_patch_grid(tiny_vit):
    feats = capture_features(tiny_vit, torch.randn(1, 3, 40, 24), "blocks.0")
    assert feats["blocks.0"].shape == (1, 16, 5, 3)
    raw = capture_features(tiny_vit, torch.randn(1, 3, 40, 24), "blocks.0", spatial=False)
    assert raw["blocks.0"].shape == (1, 16, 16)


def test_list_layers_names_types_shapes_params(small_cnn):
    layers = {info.name: info for info in list_layers(small_cnn, (1, 3, 16, 16))}
    assert list(layers) == [n for n, _ in small_cnn.named_modules() if n]
    assert layers["features.0"].output_shape == (1, 8, 16, 16)
    assert layers["features.1"].output_shape == (1, 8, 8, 8)
    assert layers["features.2"].output_shape == (1, 16, 4, 4)
    assert layers["fc"].output_shape == (1, 5) and layers["fc"].type == "Linear"
    assert layers["fc"].params == 16 * 5 + 5
    assert layers["features.0.0"].params == 3 * 8 * 9


def test_channel_energy_orders_the_grid():
    fmap = torch.stack([torch.full((4, 4), float(v)) for v in (1.0, -3.0, 2.0)])
    assert torch.allclose(channel_energy(fmap), torch.tensor([1.0, 9.0, 4.0]))


def test_upsampling_matches_opencv_bilinear():
    torch.manual_seed(0)
    fmap = torch.randn(3, 5, 7)
    ours = upsample_channels(fmap, (20, 28))
    for c in range(3):
        ref = cv2.resize(fmap[c].numpy(), (28, 20), interpolation=cv2.INTER_LINEAR)
        ref = (ref - ref.min()) / (ref.max() - ref.min())
        assert np.abs(ours[c].numpy() - ref).max() < 1e-5


def test_feature_grid_png(tmp_path, small_cnn):
    x = torch.randn(1, 3, 32, 32)
    fmap = capture_features(small_cnn, x, "features.1")["features.1"][0]
    image = (torch.rand(3, 32, 32) * 255).to(torch.uint8)
    path = save_feature_grid(fmap, image, tmp_path / "features.png", topk=6, title="features.1")
    open_png(path, (200, 200))


def test_cam_outputs_overlays_and_raw_maps(tmp_path, small_cnn):
    x = torch.randn(2, 3, 24, 24)
    display = (torch.rand(2, 3, 24, 24) * 255).to(torch.uint8)
    result = compute_cam(small_cnn, x, "gradcam++")
    written = save_cam_outputs(result, display, tmp_path, ["a", "b"])
    assert [p.name for p in written["overlays"]] == ["a_gradcampp.png", "b_gradcampp.png"]
    for png, npy, i in zip(written["overlays"], written["maps"], range(2)):
        pixels = open_png(png, (24, 24))
        assert pixels.shape == (24, 24, 3)
        raw = np.load(npy)
        assert raw.dtype == np.float32 and np.array_equal(raw, result.maps[i].numpy())


def test_cam_grid_and_gallery(tmp_path, small_cnn):
    x = torch.randn(3, 3, 24, 24)
    results = [compute_cam(small_cnn, x, m) for m in ("gradcam", "eigencam")]
    grid = save_cam_grid(results, torch.rand(3, 3, 24, 24), tmp_path / "grid.png", class_names=list("abcde"))
    open_png(grid, (300, 300))
    gallery = cam_gallery(small_cnn, x, tmp_path / "gallery.png", target=[0, 1, 2], titles=["x", "y", "z"], batch_size=2)
    open_png(gallery, (200, 200))
    with pytest.raises(ValueError):
        cam_gallery(small_cnn, x[:0], tmp_path / "empty.png")


def test_explain_images_streams_batches_of_mixed_sizes(tmp_path, small_cnn):
    from cvpipe.explain import explain_images

    torch.manual_seed(0)
    sizes = [16, 16, 16, 24, 24]
    samples = [(f"im{i}", torch.randn(3, s, s), torch.rand(3, s, s)) for i, s in enumerate(sizes)]
    samples.append(("im0", torch.randn(3, 24, 24), torch.rand(3, 24, 24)))  # a repeated name
    targets = [0, 1, 2, 3, 4, 0]
    report = explain_images(small_cnn, iter(samples), tmp_path, ["gradcam", "xgradcam"], target=targets,
                            batch_size=2, faithfulness=True, fractions=(0.5,))  # fmt: skip
    assert len(report.records) == 12
    by_image = {}
    for r in report.records:
        by_image.setdefault(r.image, set()).add(r.target)
    assert list(by_image) == ["im0", "im1", "im2", "im3", "im4", "im0_2"]
    assert [by_image[k] for k in by_image] == [{str(t)} for t in targets]
    assert np.load(tmp_path / "im3_xgradcam.npy").shape == (24, 24)
    open_png(report.grid, (150, 150))  # the 16 px images only
    assert set(report.faithfulness()) == {"gradcam", "xgradcam"}
    assert report.summary_csv.read_text().count("\n") == 13


def test_a_layer_without_a_spatial_output_is_named_in_the_error(small_cnn):
    with pytest.raises(ConfigError, match=r"layer 'fc' has shape \(1, 5\)"):
        capture_features(small_cnn, torch.randn(1, 3, 16, 16), "fc")


def test_constant_channels_are_drawn_flat_not_as_rounding_noise(tmp_path):
    # ResNet's layer4 on 32 px digits is 1x1: each channel is one value; upsampling it must
    # give a flat tile, not the interpolation's float rounding stretched to [0, 1].
    fmap = torch.tensor([5.3, 171.9, 0.0, 1e-3]).reshape(4, 1, 1)
    ours = upsample_channels(fmap, (32, 32))
    assert torch.equal(ours, torch.zeros(4, 32, 32))
    mixed = torch.stack([torch.full((3, 3), 7.25), torch.arange(9.0).reshape(3, 3)])
    ours = upsample_channels(mixed, (12, 12))
    assert torch.equal(ours[0], torch.zeros(12, 12))
    ref = cv2.resize(mixed[1].numpy(), (12, 12), interpolation=cv2.INTER_LINEAR)
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    assert np.abs(ours[1].numpy() - ref).max() < 1e-5
    path = save_feature_grid(fmap, torch.zeros(1, 32, 32, dtype=torch.uint8), tmp_path / "flat.png", topk=4)
    open_png(path, (200, 200))
