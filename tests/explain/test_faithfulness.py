"""ROAD faithfulness: the imputer against pytorch-grad-cam's, and scores on a model with a known answer."""

import pytest
import torch
import torch.nn as nn
from pytorch_grad_cam.metrics.road import NoisyLinearImputer

from cvpipe.explain import compare_methods, compute_cam, impute_linear, road_score
from cvpipe.explain.faithfulness import removal_mask


class EdgeQuadrantNet(nn.Module):
    """Class 0 fires on fine texture (Laplacian energy) in the top-left quadrant only.

    Smoothing that quadrant (which is what imputation does) must collapse p(class 0); the rest
    of the image is irrelevant. A (B, 3, 32, 32) noise image gives p(class 0) close to 1.
    """

    default_cam_layer = "gate"

    def __init__(self):
        super().__init__()
        self.edges = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]) / 3
        with torch.no_grad():
            self.edges.weight.copy_(torch.stack([laplacian, -laplacian, laplacian, -laplacian])[:, None].repeat(1, 3, 1, 1))
        self.act = nn.ReLU()
        mask = torch.zeros(1, 1, 32, 32)
        mask[..., :16, :16] = 1
        self.gate = nn.Identity()
        self.register_buffer("mask", mask)
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[20.0] * 4, [0.0] * 4]))
            self.fc.bias.copy_(torch.tensor([-2.0, 0.0]))

    def forward(self, x):
        return self.fc(self.gate(self.act(self.edges(x)) * self.mask).mean(dim=(2, 3)))


@pytest.fixture
def edge_net():
    return EdgeQuadrantNet().eval()


def test_imputation_matches_grad_cam_road_imputer():
    torch.manual_seed(0)
    image = torch.randn(3, 20, 24)
    removed = removal_mask(torch.rand(20, 24), 0.6, most_relevant=True)
    ours = impute_linear(image, removed, noise=0.0)
    theirs = NoisyLinearImputer(noise=0.0)(image, (~removed).float())  # theirs marks kept pixels
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.equal(ours[:, ~removed], image[:, ~removed])  # kept pixels untouched


def test_imputation_of_a_constant_image_is_that_constant():
    image = torch.full((2, 9, 11), 0.25)
    removed = torch.rand(9, 11) > 0.3
    assert torch.allclose(impute_linear(image, removed, noise=0.0), image, atol=1e-6)


def test_removal_mask_takes_exactly_the_most_or_least_relevant():
    saliency = torch.arange(20.0).reshape(4, 5)
    top = removal_mask(saliency, 0.25, most_relevant=True)
    bottom = removal_mask(saliency, 0.25, most_relevant=False)
    assert top.sum() == 5 and torch.equal(saliency[top], torch.arange(15.0, 20.0))
    assert bottom.sum() == 5 and torch.equal(saliency[bottom], torch.arange(0.0, 5.0))


def test_faithful_map_beats_its_inverse(edge_net):
    torch.manual_seed(0)
    inputs = torch.rand(2, 3, 32, 32)
    cam = compute_cam(edge_net, inputs, "gradcam", target=0)
    fractions = (0.1, 0.25, 0.5)
    good = road_score(edge_net, inputs, cam.maps, cam.targets, fractions)
    bad = road_score(edge_net, inputs, 1.0 - cam.maps, cam.targets, fractions)
    assert torch.all(good.original > 0.9)
    assert good.morf.shape == (2, 3) and good.lerf.shape == (2, 3)
    assert good.summary()["confidence_drop"] > 0.3
    assert good.summary()["road"] > 0.3
    assert bad.summary()["road"] < 0.0 < good.summary()["road"]
    # repeatable: the imputation noise is seeded
    again = road_score(edge_net, inputs, cam.maps, cam.targets, fractions)
    assert torch.equal(again.morf, good.morf)


def test_compare_methods_reports_each_method(edge_net):
    torch.manual_seed(1)
    inputs = torch.rand(1, 3, 32, 32)
    table = compare_methods(edge_net, inputs, ["gradcam", "Eigen-CAM"], fractions=(0.2, 0.4))
    assert set(table) == {"gradcam", "eigencam"}
    for scores in table.values():
        assert set(scores) == {"confidence_drop", "road", "p_original", "p_morf", "p_lerf"}
        assert scores["road"] > 0.2


def test_multi_label_models_report_sigmoid_probabilities(small_cnn, tmp_path):
    """A multi-label model scores each class with its own sigmoid: the CAM summary and ROAD
    must use it, not a softmax over classes (which mixes in the other labels)."""
    import csv

    from cvpipe.explain.api import explain_images

    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = small_cnn.eval()(x)
    target = logits.argmax(1)
    samples = [(f"img{i}", x[i], torch.rand(3, 32, 32)) for i in range(2)]
    report = explain_images(small_cnn, samples, tmp_path, ["gradcam"], faithfulness=True, fractions=(0.5,),
                            multi_label=True)  # fmt: skip
    expected = logits.gather(1, target[:, None])[:, 0].sigmoid()
    torch.testing.assert_close(torch.tensor([r.probability for r in report.records]), expected)
    rows = list(csv.DictReader(open(report.summary_csv)))
    assert [round(float(r["probability"]), 5) for r in rows] == [round(float(p), 5) for p in expected]
    scores = road_score(small_cnn, x, torch.rand(2, 32, 32), target, (0.5,), multi_label=True)
    torch.testing.assert_close(scores.original, expected)
