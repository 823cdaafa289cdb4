"""CAM behaviour where the answer is known, target/layer handling, hooks and memory hygiene."""

import gc
import warnings

import pytest
import torch
import torch.nn as nn

from cvpipe.errors import ConfigError
from cvpipe.explain import METHODS, canonical_method, compute_cam
from cvpipe.explain.cam import normalize_maps


def hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
        for m in model.modules()
    )


def live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():  # isinstance() on some deprecated torch aliases warns
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_peaks_in_the_only_quadrant_the_model_sees(method, quadrant_net):
    torch.manual_seed(3)
    inputs = torch.rand(3, 3, 32, 32)
    result = compute_cam(quadrant_net, inputs, method, target=0)
    maps = result.maps
    assert maps.shape == (3, 32, 32)
    inside = maps[:, :16, :16].sum(dim=(1, 2))
    assert torch.all(inside / maps.sum(dim=(1, 2)) > 0.9)
    peaks = maps.flatten(1).argmax(1)
    assert torch.all(peaks // 32 < 16) and torch.all(peaks % 32 < 16)


def test_targets_by_default_index_name_and_per_image(small_cnn):
    torch.manual_seed(0)
    x = torch.randn(3, 3, 16, 16)
    names = ["a", "b", "c", "d", "e"]
    top = compute_cam(small_cnn, x, "gradcam")
    assert top.targets.tolist() == small_cnn(x).argmax(1).tolist()
    by_index = compute_cam(small_cnn, x, "gradcam", target=2)
    by_name = compute_cam(small_cnn, x, "gradcam", target="c", class_names=names)
    assert by_index.targets.tolist() == [2, 2, 2]
    assert torch.equal(by_index.maps, by_name.maps)
    per_image = compute_cam(small_cnn, x, "gradcam", target=["a", 4, "b"], class_names=names)
    assert per_image.targets.tolist() == [0, 4, 1]
    # each image's map equals the map computed for it alone
    alone = compute_cam(small_cnn, x[1:2], "gradcam", target=4)
    assert torch.allclose(per_image.maps[1], alone.maps[0], atol=1e-5)
    probs = small_cnn(x).softmax(1)
    assert torch.allclose(per_image.probs, probs[torch.arange(3), per_image.targets], atol=1e-6)


def test_bad_targets_layers_and_methods_are_config_errors(small_cnn):
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(ConfigError, match="out of range"):
        compute_cam(small_cnn, x, target=9)
    with pytest.raises(ConfigError, match="not a class index or name"):
        compute_cam(small_cnn, x, target="zebra", class_names=["a", "b"])
    with pytest.raises(ConfigError, match="3 targets for 2 images"):
        compute_cam(small_cnn, x, target=[0, 1, 2])
    with pytest.raises(ConfigError, match="did you mean features.2"):
        compute_cam(small_cnn, x, layers="features.22")
    with pytest.raises(ConfigError, match=r"did you mean features\.2, "):  # a name without its parent
        compute_cam(small_cnn, x, layers="2")
    with pytest.raises(ConfigError, match="unknown CAM method"):
        compute_cam(small_cnn, x, "smoothgrad")
    with pytest.raises(ConfigError, match="no default_cam_layer"):
        compute_cam(nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten(), nn.LazyLinear(2)), x)


def test_method_aliases():
    assert canonical_method("Grad-CAM++") == "gradcam++"
    assert canonical_method("gradcam_pp") == "gradcam++"
    assert canonical_method("GradCAMPlusPlus") == "gradcam++"
    assert canonical_method("Score-CAM") == "scorecam"


def test_cam_refuses_heads_that_are_not_gap_plus_linear(small_cnn):
    class TwoLayerHead(nn.Module):
        def __init__(self, body):
            super().__init__()
            self.features = body.features
            self.fc = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))

        def forward(self, x):
            return self.fc(self.features(x).mean(dim=(2, 3)))

    with pytest.raises(ConfigError, match="method=cam needs"):
        compute_cam(TwoLayerHead(small_cnn).eval(), torch.randn(1, 3, 16, 16), "cam", layers="features.2")


def test_inplace_relu_after_the_layer_does_not_corrupt_the_capture(make_small_cnn):
    # features.2.0 is a conv followed by ReLU(inplace=True): the map must use the conv output.
    plain, inplace = make_small_cnn(inplace=False), make_small_cnn(inplace=True)
    x = torch.randn(2, 3, 16, 16)
    for method in ("gradcam", "hirescam", "eigencam"):
        a = compute_cam(plain, x, method, layers="features.2.0")
        b = compute_cam(inplace, x, method, layers="features.2.0")
        assert torch.allclose(a.maps, b.maps, atol=1e-6), method
    # and the network's own output is unchanged by the capture
    assert torch.allclose(compute_cam(inplace, x, "gradcam", layers="features.2.0").logits, inplace(x), atol=1e-6)


def test_frozen_model_in_train_mode_under_no_grad(small_cnn):
    x = torch.randn(2, 3, 16, 16)
    reference = compute_cam(small_cnn, x, "gradcam++")
    for p in small_cnn.parameters():
        p.requires_grad_(False)
    small_cnn.train()
    with torch.no_grad():
        frozen = compute_cam(small_cnn, x, "gradcam++")
    assert small_cnn.training and all(m.training for m in small_cnn.modules())  # mode restored
    assert torch.allclose(reference.maps, frozen.maps, atol=1e-6)


@pytest.fixture
def one_thread():
    # Thousands of tiny calls: thread hand-off would dominate (and thrash a shared CPU).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_hooks_released_and_no_growth_over_many_calls(small_cnn, one_thread):
    x = torch.randn(1, 3, 8, 8)
    before = hook_count(small_cnn)
    for method in METHODS:  # warm up every code path once
        compute_cam(small_cnn, x, method)
    tensors = live_tensors()
    for i in range(1000):
        compute_cam(small_cnn, x, METHODS[i % len(METHODS)] if i % 50 == 0 else "gradcam")
    assert hook_count(small_cnn) == before
    assert live_tensors() <= tensors  # nothing captured survives a call
    assert all(p.grad is None for p in small_cnn.parameters())  # gradients never accumulate


def test_hooks_released_when_the_forward_pass_raises(small_cnn):
    class Failing(nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            self.body.features(x)
            raise RuntimeError("boom")

    model = Failing(small_cnn)
    before = hook_count(model)
    with pytest.raises(RuntimeError, match="boom"):
        compute_cam(model, torch.randn(1, 3, 8, 8), "gradcam", layers="body.features.2")
    assert hook_count(model) == before


def test_layer_that_does_not_reach_the_logits(small_cnn):
    class WithSideBranch(nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body
            self.side = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            self.side(x)
            return self.body(x)

    with pytest.raises(ConfigError, match="does not influence"):
        compute_cam(WithSideBranch(small_cnn).eval(), torch.randn(1, 3, 8, 8), "gradcam", layers="side")


def test_normalize_maps_is_min_max_per_image():
    maps = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[0.0, 0.0], [0.0, 0.0]]])
    out = normalize_maps(maps)
    assert torch.allclose(out[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]), atol=1e-6)
    assert torch.equal(out[1], torch.zeros(2, 2))


def test_vit_tokens_follow_the_input_size_not_a_fixed_grid(tiny_vit):
    x = torch.randn(1, 3, 48, 32)  # a 6x4 patch grid, 24 tokens + class token
    # block 0's output still reaches the class token through block 1's attention
    result = compute_cam(tiny_vit, x, "gradcam", layers="blocks.0.norm2")
    assert result.layer_maps["blocks.0.norm2"].shape == (1, 6, 4)
    assert result.maps.shape == (1, 48, 32)
    assert result.maps.max() > 0.99 and result.maps.min() < 0.01
    # the grid found from the token count alone agrees with the one from the patch size
    from cvpipe.explain.hooks import tokens_to_map

    tokens = torch.arange(25 * 2, dtype=torch.float32).reshape(1, 25, 2)
    assert torch.equal(tokens_to_map(tokens, (48, 32), (8, 8)), tokens_to_map(tokens, (48, 32), None))
    grid = tokens_to_map(tokens, (48, 32), (8, 8))
    assert grid.shape == (1, 2, 6, 4)
    assert grid[0, 0, 0, 1].item() == tokens[0, 2, 0].item()  # class token dropped, row-major order


@pytest.mark.parametrize("method", ["gradcam", "scorecam", "eigencam"])
def test_a_one_by_one_layer_is_a_config_error_not_a_blank_map(small_cnn, method):
    # features.2 has stride 4: a 4x4 input leaves a 1x1 map, whose normalised CAM is all zeros
    # (e.g. ResNet's default layer4 on 32 px images).
    with pytest.raises(ConfigError, match=r"layer 'features.2' gives a 1x1 map for a 4x4 input.*earlier layer"):
        compute_cam(small_cnn, torch.randn(2, 3, 4, 4), method)
    assert compute_cam(small_cnn, torch.randn(2, 3, 4, 4), method, layers="features.0").maps.max() > 0.99


def test_a_layer_without_a_spatial_output_is_named_in_the_error(small_cnn):
    with pytest.raises(ConfigError, match=r"layer 'fc' has shape \(1, 5\)"):
        compute_cam(small_cnn, torch.randn(1, 3, 16, 16), "gradcam", layers="fc")
