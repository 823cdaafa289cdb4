"""Losses against torch/torchvision/scikit-learn oracles and the notes' triplet formula."""

import sys
import types

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight
from torchvision.ops import sigmoid_focal_loss

from cvpipe.config import LossConfig
from cvpipe.engine.losses import (
    BatchHardTripletLoss,
    FocalLoss,
    TripletLoss,
    balanced_class_weights,
    build_loss,
    class_weights_from_config,
)
from cvpipe.errors import ConfigError

N, C = 12, 5


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(N, C, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, C, (N,), generator=g)
    multi_hot = (torch.rand(N, C, generator=g) < 0.4).double()
    weights = torch.rand(C, generator=g) + 0.2
    return logits, labels, multi_hot, weights


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_matches_torch(batch, smoothing, weighted):
    logits, labels, _, weights = batch
    w = weights if weighted else None
    loss = build_loss(LossConfig(name="auto", label_smoothing=smoothing), multi_label=False, class_weights=w)
    expected = F.cross_entropy(logits.float(), labels, weight=None if w is None else w.float(), label_smoothing=smoothing)
    torch.testing.assert_close(loss(logits.float(), labels), expected)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_focal_with_gamma_zero_is_cross_entropy(batch, smoothing, weighted):
    logits, labels, _, weights = batch
    w = weights if weighted else None
    focal = FocalLoss(gamma=0.0, weight=w, label_smoothing=smoothing)
    w = None if w is None else w.float().double()  # the loss keeps its weights in float32
    expected = F.cross_entropy(logits, labels, weight=w, label_smoothing=smoothing)
    torch.testing.assert_close(focal(logits, labels), expected)


def test_softmax_focal_matches_the_paper_formula(batch):
    logits, labels, _, weights = batch
    loss = build_loss(LossConfig(name="focal", focal_gamma=2.0), multi_label=False, class_weights=weights)
    p = torch.softmax(logits, 1)
    expected = 0.0
    for i in range(N):  # slow, obvious reference: -w_y (1 - p_y)^gamma log p_y, weighted mean
        y = labels[i]
        expected += -weights[y] * (1 - p[i, y]) ** 2 * torch.log(p[i, y])
    expected /= weights[labels].sum()
    torch.testing.assert_close(loss(logits, labels), expected, rtol=1e-6, atol=1e-7)  # float32 weights
    # down-weighting easy examples: focal < CE on the same batch
    assert loss(logits, labels) < F.cross_entropy(logits.float(), labels, weight=weights.float())


@pytest.mark.parametrize("alpha", [None, 0.25])
def test_sigmoid_focal_matches_torchvision(batch, alpha):
    logits, _, multi_hot, _ = batch
    loss = build_loss(LossConfig(name="focal", focal_gamma=1.5, focal_alpha=alpha), multi_label=True)
    expected = sigmoid_focal_loss(logits, multi_hot, alpha=-1 if alpha is None else alpha,
                                  gamma=1.5, reduction="mean")
    torch.testing.assert_close(loss(logits, multi_hot), expected)


def test_bce_is_auto_for_multi_label_with_weights_and_smoothing(batch):
    logits, labels, multi_hot, weights = batch
    loss = build_loss(LossConfig(label_smoothing=0.1), multi_label=True, class_weights=weights)
    target = multi_hot * 0.9 + 0.05
    expected = nn.BCEWithLogitsLoss(weight=weights.float().double())(logits, target)
    torch.testing.assert_close(loss(logits, multi_hot), expected)
    # single-label indices are one-hot encoded for a sigmoid classifier
    plain = build_loss(LossConfig(name="bce"), multi_label=False)
    torch.testing.assert_close(plain(logits, labels), F.binary_cross_entropy_with_logits(
        logits, F.one_hot(labels, C).double()))


@pytest.mark.parametrize(
    "name,multi", [("ce", False), ("focal", False), ("focal", True), ("bce", True), ("triplet", False)]
)
def test_low_precision_logits_give_a_float32_loss(batch, name, multi):
    logits, labels, multi_hot, weights = batch
    loss = build_loss(LossConfig(name=name), multi_label=multi, class_weights=None if name == "triplet" else weights)
    half = logits.bfloat16().requires_grad_()
    target = multi_hot.bfloat16() if multi else labels
    out = loss(half, target)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    out.backward()
    assert half.grad.dtype == torch.bfloat16


def test_auxiliary_outputs_are_weighted(batch):
    logits, labels, _, _ = batch
    loss = build_loss(LossConfig(name="ce", aux_weight=0.3), multi_label=False)
    aux1, aux2 = logits.flip(0).float(), (logits * 0.5).float()
    expected = F.cross_entropy(logits.float(), labels) + 0.3 * (F.cross_entropy(aux1, labels) + F.cross_entropy(aux2, labels))
    torch.testing.assert_close(loss((logits.float(), aux1, aux2), labels), expected)


def test_triplet_loss_is_the_notes_formula():
    g = torch.Generator().manual_seed(1)
    a, p, n = (torch.randn(6, 4, generator=g, dtype=torch.float64) for _ in range(3))
    t1, t2, beta = -0.5, 0.1, 0.3
    matched = F.pairwise_distance(a, p, eps=0) ** 2
    mismatched = F.pairwise_distance(a, n, eps=0) ** 2
    expected = (torch.clamp(matched - mismatched, min=t1) + beta * torch.clamp(matched, min=t2)).mean()
    torch.testing.assert_close(TripletLoss(t1, t2, beta)(a, p, n), expected)


def test_batch_hard_mining_picks_farthest_positive_and_nearest_negative():
    emb = torch.tensor([[0.0], [1.0], [3.0], [10.0], [10.5], [20.0]], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 0, 1, 1, 2])  # class 2 has no positive: skipped as an anchor
    t1, t2, beta = -1.0, 0.01, 0.5
    ref = TripletLoss(t1, t2, beta)
    anchors = torch.tensor([0, 1, 2, 3, 4])
    positives = torch.tensor([2, 2, 0, 4, 3])
    negatives = torch.tensor([3, 3, 3, 2, 2])
    expected = ref(emb[anchors], emb[positives], emb[negatives])
    got = BatchHardTripletLoss(t1, t2, beta)(emb, labels)
    torch.testing.assert_close(got, expected)
    got.backward()
    assert emb.grad.abs().sum() > 0


def test_triplet_built_from_config():
    loss = build_loss(LossConfig(name="triplet", triplet_t1=-2.0, triplet_beta=0.1), multi_label=False)
    inner = loss.criterion
    assert isinstance(inner, BatchHardTripletLoss) and (inner.t1, inner.t2, inner.beta) == (-2.0, 0.01, 0.1)
    emb = torch.randn(4, 3, requires_grad=True)
    out = loss(emb, torch.tensor([0, 1, 2, 3]))  # no positives anywhere: zero, still differentiable
    out.backward()
    assert out.item() == 0.0


def test_user_loss_by_dotted_path(monkeypatch):
    module = types.ModuleType("user_losses_for_test")

    class Scaled(nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def forward(self, logits, target):
            return self.scale * F.cross_entropy(logits, target)

    module.Scaled = Scaled
    monkeypatch.setitem(sys.modules, "user_losses_for_test", module)
    loss = build_loss(LossConfig(name="user_losses_for_test.Scaled", kwargs={"scale": 2.0}), multi_label=False)
    logits, labels = torch.randn(3, 4), torch.tensor([0, 1, 3])
    torch.testing.assert_close(loss(logits, labels), 2 * F.cross_entropy(logits, labels))
    with pytest.raises(ConfigError, match="no_such_pkg.mod.Loss"):
        build_loss(LossConfig(name="no_such_pkg.mod.Loss"), multi_label=False)
    with pytest.raises(ConfigError, match="has no attribute Missing"):
        build_loss(LossConfig(name="user_losses_for_test.Missing"), multi_label=False)
    with pytest.raises(ConfigError, match="cannot construct"):
        build_loss(LossConfig(name="user_losses_for_test.Scaled", kwargs={"bad": 1}), multi_label=False)


@pytest.mark.parametrize(
    "cfg,multi,match",
    [
        (LossConfig(name="crossentropy"), False, "not a loss"),
        (LossConfig(name="focall"), False, "did you mean focal"),
        (LossConfig(name="ce"), True, "single-label"),
        (LossConfig(name="focal", focal_alpha=0.25), False, "class_weights"),
        (LossConfig(label_smoothing=1.0), False, "label_smoothing"),
    ],
)
def test_config_errors(cfg, multi, match):
    with pytest.raises(ConfigError, match=match):
        build_loss(cfg, multi_label=multi)


def test_balanced_class_weights_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.choice(6, size=200, p=[0.5, 0.2, 0.1, 0.1, 0.05, 0.05])
    counts = np.bincount(y, minlength=6)
    expected = compute_class_weight("balanced", classes=np.arange(6), y=y)
    np.testing.assert_allclose(balanced_class_weights(counts).numpy(), expected, rtol=1e-6)
    # a class without samples: the others match sklearn on the classes present, the empty one is 1
    with_empty = np.insert(counts, 2, 0)
    got = balanced_class_weights(with_empty).numpy()
    np.testing.assert_allclose(np.delete(got, 2), expected, rtol=1e-6)
    assert got[2] == 1.0


def test_class_weights_from_config():
    counts = [10, 30]
    assert class_weights_from_config(LossConfig(), counts) is None
    torch.testing.assert_close(class_weights_from_config(LossConfig(class_weights="balanced"), counts),
                               torch.tensor([2.0, 2 / 3]))
    torch.testing.assert_close(class_weights_from_config(LossConfig(class_weights=[1.0, 3.0]), counts),
                               torch.tensor([1.0, 3.0]))
    with pytest.raises(ConfigError, match="one per class"):
        class_weights_from_config(LossConfig(class_weights=[1.0]), counts)
    with pytest.raises(ConfigError, match="balanced"):
        class_weights_from_config(LossConfig(class_weights="balance"), counts)
