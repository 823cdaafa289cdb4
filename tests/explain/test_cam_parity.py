"""Parity with the pytorch-grad-cam package on the same model, layers, inputs and targets."""

import numpy as np
import pytest
import pytorch_grad_cam as pgc
import pytorch_grad_cam.eigen_cam
import torch
import torchvision
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from cvpipe.explain import compute_cam

TOL = 1e-4  # max abs difference on normalised maps

ORACLES = {
    "gradcam": pgc.GradCAM,
    "gradcam++": pgc.GradCAMPlusPlus,
    "xgradcam": pgc.XGradCAM,
    "layercam": pgc.LayerCAM,
    "hirescam": pgc.HiResCAM,
    "eigencam": pgc.EigenCAM,
    "scorecam": pgc.ScoreCAM,
}


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(1)
    return torch.randn(2, 3, 64, 64)


@pytest.fixture
def eigen_sign_fixed(monkeypatch):
    """pytorch-grad-cam leaves the SVD sign to LAPACK; apply cvpipe's rule (projection rises
    where the channel sum rises) to its projection so the two can be compared exactly."""
    original = pytorch_grad_cam.eigen_cam.get_2d_projection

    def projection_with_sign(activation_batch):
        projections = original(activation_batch)
        for i, acts in enumerate(activation_batch):
            energy = acts.sum(axis=0)
            if (projections[i] * (energy - energy.mean())).sum() < 0:
                projections[i] = -projections[i]
        return projections

    monkeypatch.setattr(pytorch_grad_cam.eigen_cam, "get_2d_projection", projection_with_sign)


def _oracle(method, model, modules, inputs, targets, **attrs):
    with ORACLES[method](model=model, target_layers=modules) as cam:
        for k, v in attrs.items():
            setattr(cam, k, v)
        return cam(inputs, [ClassifierOutputTarget(int(t)) for t in targets])


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "xgradcam", "layercam", "hirescam", "eigencam"])
def test_matches_grad_cam_on_resnet18(method, resnet18, batch, eigen_sign_fixed):
    ours = compute_cam(resnet18, batch, method, layers="layer4")
    theirs = _oracle(method, resnet18, [resnet18.layer4], batch, ours.targets)
    assert ours.maps.shape == (2, 64, 64)
    assert np.abs(ours.maps.numpy() - theirs).max() <= TOL
    assert ours.maps.max() > 0.99 and ours.maps.min() < 0.01  # normalised, not constant


@pytest.mark.parametrize("method", ["gradcam", "layercam"])
def test_matches_grad_cam_with_two_layers_and_explicit_targets(method, resnet18, batch):
    targets = [3, 7]
    ours = compute_cam(resnet18, batch, method, layers=["layer3", "layer4"], target=targets)
    theirs = _oracle(method, resnet18, [resnet18.layer3, resnet18.layer4], batch, targets)
    assert ours.targets.tolist() == targets
    assert np.abs(ours.maps.numpy() - theirs).max() <= TOL


def test_score_cam_matches_grad_cam(small_cnn):
    torch.manual_seed(2)
    inputs = torch.randn(2, 3, 24, 24)
    ours = compute_cam(small_cnn, inputs, "scorecam", batch_size=7)
    theirs = _oracle("scorecam", small_cnn, [small_cnn.features[2]], inputs, ours.targets, batch_size=5)
    assert np.abs(ours.maps.numpy() - theirs).max() <= TOL


def test_cam_equals_grad_cam_on_gap_linear_head(resnet18, batch):
    # On logits = W GAP(A) + b the Grad-CAM weights are W[c] / (h w): the same map after scaling.
    ours = compute_cam(resnet18, batch, "cam", layers="layer4")
    theirs = _oracle("gradcam", resnet18, [resnet18.layer4], batch, ours.targets)
    assert np.abs(ours.maps.numpy() - theirs).max() <= TOL


def test_vit_tokens_match_grad_cam_with_its_reshape_transform():
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=4
    ).eval()
    inputs = torch.randn(2, 3, 32, 32)
    layer = "encoder.layers.encoder_layer_1.ln_1"

    def reshape_transform(tokens):  # what grad-cam's ViT tutorial does, for a 4x4 grid
        return tokens[:, 1:, :].reshape(tokens.shape[0], 4, 4, tokens.shape[2]).permute(0, 3, 1, 2)

    ours = compute_cam(vit, inputs, "gradcam", layers=layer)
    module = dict(vit.named_modules())[layer]
    with pgc.GradCAM(model=vit, target_layers=[module], reshape_transform=reshape_transform) as cam:
        theirs = cam(inputs, [ClassifierOutputTarget(int(t)) for t in ours.targets])
    assert ours.layer_maps[layer].shape == (2, 4, 4)
    assert np.abs(ours.maps.numpy() - theirs).max() <= TOL


@pytest.mark.parametrize("name,size", [("resnet18", 64), ("mobilenet_v2", 96)])
def test_zoo_cnns_default_layer_matches_grad_cam(name, size):
    from cvpipe.models import create_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=6).eval()
    inputs = torch.randn(2, 3, size, size)
    ours = compute_cam(model, inputs, "gradcam++")  # the model's default_cam_layer
    module = dict(model.named_modules())[model.default_cam_layer]
    theirs = _oracle("gradcam++", model, [module], inputs, ours.targets)
    assert np.abs(ours.maps.numpy() - theirs).max() <= TOL


def test_zoo_vit_on_a_non_square_input_matches_grad_cam():
    from cvpipe.models import create_model

    torch.manual_seed(0)
    vit = create_model("vit_ti_16", num_classes=4).eval()
    inputs = torch.randn(1, 3, 96, 64)  # a 6 x 4 patch grid, not the 14 x 14 of 224 px

    def reshape_transform(tokens):
        return tokens[:, 1:, :].reshape(tokens.shape[0], 6, 4, tokens.shape[2]).permute(0, 3, 1, 2)

    ours = compute_cam(vit, inputs, "gradcam")
    module = dict(vit.named_modules())[vit.default_cam_layer]
    with pgc.GradCAM(model=vit, target_layers=[module], reshape_transform=reshape_transform) as cam:
        theirs = cam(inputs, [ClassifierOutputTarget(int(t)) for t in ours.targets])
    assert ours.layer_maps[vit.default_cam_layer].shape == (1, 6, 4)
    assert np.abs(ours.maps.numpy() - theirs).max() <= TOL
