"""Shared layers: the act/norm factory, ConvNormAct, make_divisible and the attention plug-ins.

Oracles: torchvision's ``Conv2dNormActivation``, ``SqueezeExcitation`` and ``_make_divisible``;
direct formulas for CBAM, SRM and the channel LayerNorm.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models._utils import _make_divisible
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation

from cvpipe.errors import ConfigError
from cvpipe.models.attention import CBAM, SRM, SqueezeExcite, get_attn
from cvpipe.models.layers import (
    ConvNormAct,
    LayerNorm2d,
    create_act,
    get_act_layer,
    get_norm_layer,
    make_divisible,
)


def test_make_divisible_matches_torchvision():
    for v in [3, 8, 12, 15.9, 16 * 0.35, 24 * 0.75, 32 * 1.4, 96 * 0.5, 1280 * 1.3, 7, 9, 100]:
        assert make_divisible(v, 8) == _make_divisible(v, 8), v
    assert make_divisible(10, 8) % 8 == 0 and make_divisible(10, 8) >= 0.9 * 10


@pytest.mark.parametrize(
    "name,cls",
    [("relu", nn.ReLU), ("ReLU6", nn.ReLU6), ("leaky_relu", nn.LeakyReLU), ("prelu", nn.PReLU), ("elu", nn.ELU),
     ("gelu", nn.GELU), ("swish", nn.SiLU), ("hard-swish", nn.Hardswish), ("hardsigmoid", nn.Hardsigmoid)],
)
def test_activation_names(name, cls):
    assert get_act_layer(name) is cls
    act = create_act(name, inplace=True)
    assert isinstance(act, cls)
    if hasattr(act, "inplace"):
        assert act.inplace
    assert act(torch.randn(2, 4)).shape == (2, 4)


def test_factory_defaults_and_errors():
    assert get_act_layer("") is nn.ReLU and get_act_layer(None, default=nn.GELU) is nn.GELU
    assert get_norm_layer("") is nn.BatchNorm2d
    assert isinstance(create_act("leaky_relu"), nn.LeakyReLU) and create_act("leaky_relu").negative_slope == 0.01
    with pytest.raises(ConfigError, match="model.act_layer"):
        get_act_layer("relu7")
    with pytest.raises(ConfigError, match="model.norm_layer"):
        get_norm_layer("batchnorm3d")


def test_norms_by_name():
    x = torch.randn(2, 48, 5, 5)
    gn = get_norm_layer("gn")(48)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 16  # largest divisor of 48 up to 32
    assert get_norm_layer("group_norm")(64).num_groups == 32
    ln = get_norm_layer("ln")(48)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (48,)).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), expected)
    assert isinstance(ln, LayerNorm2d)
    frozen = get_norm_layer("frozen_bn")(48)
    assert not list(frozen.parameters())
    bn = nn.BatchNorm2d(48).eval()
    bn.running_mean.normal_()
    frozen.load_state_dict(bn.state_dict())  # same keys as BatchNorm2d
    torch.testing.assert_close(frozen(x), bn(x))


def test_conv_norm_act_matches_torchvision():
    ref = Conv2dNormActivation(8, 16, 3, stride=2, groups=2, activation_layer=nn.Hardswish).eval()
    ours = ConvNormAct(8, 16, 3, stride=2, groups=2, act_layer="hard_swish").eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(1, 8, 9, 9)
    torch.testing.assert_close(ours(x), ref(x))
    assert ours[0].bias is None
    no_norm = ConvNormAct(8, 16, 1, norm_layer=None, act_layer=None)
    assert len(no_norm) == 1 and no_norm[0].bias is not None


def test_squeeze_excite_matches_torchvision():
    ref = SqueezeExcitation(32, 8)
    ours = SqueezeExcite(32, rd_channels=8)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 32, 6, 6)
    torch.testing.assert_close(ours(x), ref(x))
    assert SqueezeExcite(256).fc1.out_channels == 16  # reduction 16 by default


def test_cbam_is_channel_then_spatial_gating():
    torch.manual_seed(0)
    m = CBAM(32).eval()
    x = torch.randn(2, 32, 6, 6)
    mlp = m.channel.mlp
    ch = torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
    y = x * ch
    sp = torch.sigmoid(m.spatial.conv(torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], 1)))
    torch.testing.assert_close(m(x), y * sp)


def test_srm_pools_style_mean_and_std():
    torch.manual_seed(0)
    m = SRM(16).eval()
    with torch.no_grad():
        m.bn.running_mean.normal_()
        m.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 16, 5, 7)
    mu, sd = x.mean((2, 3)), x.std((2, 3), unbiased=False)
    w = m.cfc.weight[:, 0, :]  # (C, 2): one weight for the mean and one for the std
    z = mu * w[:, 0] + sd * w[:, 1]
    z = (z - m.bn.running_mean) / torch.sqrt(m.bn.running_var + m.bn.eps) * m.bn.weight + m.bn.bias
    torch.testing.assert_close(m(x), x * torch.sigmoid(z)[:, :, None, None])


def test_get_attn():
    assert get_attn("") is None and get_attn(None) is None and get_attn("SE") is SqueezeExcite
    with pytest.raises(ConfigError, match="se, cbam, srm"):
        get_attn("eca")
