"""Output-size helpers against PyTorch's own layers; receptive fields against the notes'
recursion, known networks and the support of an input gradient."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

from cvpipe.analysis import (
    conv_output_size,
    conv_transpose_output_size,
    pool_output_size,
    receptive_field,
    receptive_fields,
)

META = torch.device("meta")  # shapes only, no arithmetic


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3), d=st.integers(1, 3)
)
def test_conv_output_size_matches_conv2d(n, k, s, p, d):
    if n + 2 * p < d * (k - 1) + 1:
        with pytest.raises(ValueError):
            conv_output_size(n, k, s, p, d)
        return
    conv = nn.Conv2d(1, 1, k, s, p, d, device=META)
    out = conv(torch.empty(1, 1, n, n + 1, device=META))
    assert conv_output_size((n, n + 1), k, s, p, d) == tuple(out.shape[-2:])
    assert conv_output_size(n, k, s, p, d) == out.shape[-2]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 40), k=st.integers(1, 5), s=st.integers(1, 4), p=st.integers(0, 2), ceil=st.booleans())
def test_pool_output_size_matches_maxpool_and_avgpool(n, k, s, p, ceil):
    if p > k // 2 or n + 2 * p < k:
        return  # PyTorch rejects these
    x = torch.empty(1, 1, n, n, device=META)
    expected = pool_output_size(n, k, s, p, ceil_mode=ceil)
    assert nn.MaxPool2d(k, s, p, ceil_mode=ceil)(x).shape[-1] == expected
    assert nn.AvgPool2d(k, s, p, ceil_mode=ceil)(x).shape[-1] == expected
    if n >= k:
        assert pool_output_size(n, k) == nn.MaxPool2d(k)(x).shape[-1]  # stride defaults to the kernel


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 20), k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 2), op=st.integers(0, 2))
def test_conv_transpose_output_size_matches_convtranspose2d(n, k, s, p, d, op):
    if op >= max(s, d):
        return  # PyTorch requires output_padding < max(stride, dilation)
    expected = conv_transpose_output_size(n, k, s, p, op, d)
    if expected < 1:
        return
    layer = nn.ConvTranspose2d(1, 1, k, s, p, op, dilation=d, device=META)
    assert layer(torch.empty(1, 1, n, n, device=META)).shape[-1] == expected


def test_notes_recursion_worked_example():
    # notes: F = 1 -> pool (k2, s2): 2 -> conv (k3, s2): 5
    assert receptive_field([(3, 2), (2, 2)]) == 5
    assert receptive_field([]) == 1


VGG16_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def test_vgg16_conv5_3_is_196_pixels():
    with META:
        vgg = torchvision.models.vgg16().eval()
    layers = {g.name: g for g in receptive_fields(vgg, torch.empty(1, 3, 224, 224, device=META))}
    conv5_3 = layers["features.28"]
    assert conv5_3.type == "Conv2d" and conv5_3.field == (196, 196) and conv5_3.stride == (16, 16)
    assert conv5_3.output_shape == (1, 512, 14, 14)
    assert layers["features.30"].field == (212, 212)  # pool5
    # the notes' back-to-front recursion over the same chain agrees
    chain = [(3, 1) if v != "M" else (2, 2) for v in VGG16_CONFIG]
    assert receptive_field(chain[:17]) == 196  # up to conv5_3
    assert receptive_field(chain) == 212
    assert layers["classifier.0"].field is None  # after flattening, every unit sees everything


class Branchy(nn.Module):
    """Strided, dilated and parallel convolutions, average pooling and explicit padding."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.dilated = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
        self.wide = nn.Conv2d(4, 4, 5, padding=2)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.head = nn.Conv2d(4, 2, 3, stride=2)

    def forward(self, x):
        x = torch.tanh(self.stem(x))  # tanh: no dead units, so no accidental zero gradients
        x = torch.tanh(self.dilated(x)) + self.wide(x)
        x = self.pool(x)
        return self.head(F.pad(x, (1, 0, 1, 0)))


def test_field_and_centre_equal_the_support_of_the_input_gradient():
    torch.manual_seed(0)
    model = Branchy().eval()
    x = torch.randn(1, 1, 96, 96, requires_grad=True)
    head = {g.name: g for g in receptive_fields(model, x.detach())}["head"]
    out = model(x)
    i, j = out.shape[2] // 2, out.shape[3] // 2
    (grad,) = torch.autograd.grad(out[0, 0, i, j], x)
    rows = grad[0, 0].abs().sum(1).nonzero()[:, 0]
    cols = grad[0, 0].abs().sum(0).nonzero()[:, 0]
    assert 0 < rows.min() and rows.max() < 95 and 0 < cols.min() and cols.max() < 95  # not clipped
    assert head.field == (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))
    centre = ((rows.min() + rows.max() + 1) / 2, (cols.min() + cols.max() + 1) / 2)  # pixel i spans [i, i+1)
    assert head.start[0] + i * head.stride[0] == pytest.approx(float(centre[0]))
    assert head.start[1] + j * head.stride[1] == pytest.approx(float(centre[1]))


def test_squeeze_excitation_context_does_not_make_the_field_global():
    class SEBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Conv2d(8, 8, 1)

        def forward(self, x):
            x = self.conv(x)
            return x * torch.sigmoid(self.fc(x.mean(dim=(2, 3), keepdim=True)))

    model = nn.Sequential(SEBlock(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.Flatten(), nn.LazyLinear(4))
    layers = {g.name: g for g in receptive_fields(model, torch.randn(1, 3, 16, 16))}
    assert layers["0"].field == (3, 3)
    assert layers["1"].field == (5, 5) and layers["1"].stride == (2, 2)
    assert layers["3"].field is None


def test_upsampling_halves_the_stride():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4, padding=1), nn.Upsample(scale_factor=2, mode="nearest"))
    layers = {g.name: g for g in receptive_fields(model, torch.randn(1, 3, 32, 32))}
    assert layers["0"].stride == (4, 4) and layers["1"].stride == (2, 2)
    assert layers["1"].field == layers["0"].field
