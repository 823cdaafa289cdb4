"""MAC counts against fvcore and torchvision's published figures; ViT-B/16 explained op by op.

fvcore traces each model once (module-scoped fixtures); our counter then runs on a meta-device
copy, which needs only shapes, so the suite pays for one real forward per model.
"""

import pytest
import torch
import torchvision
from fvcore.nn import FlopCountAnalysis, parameter_count

from cvpipe.analysis import count_macs, count_parameters
from cvpipe.models import create_model

# Ops fvcore counts that are not multiply-accumulates (BN folds into the conv at inference,
# pooling is additions only). fvcore's own docs suggest switching BN off for inference counts.
NOT_MACS = ["aten::batch_norm", "aten::group_norm", "aten::layer_norm", "aten::instance_norm",
            "aten::adaptive_avg_pool2d", "aten::upsample_nearest2d", "aten::upsample_bilinear2d"]  # fmt: skip


def fvcore_counts(model, x):
    default = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    same_rules = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    # (a handle of None only marks an op "ignored" and keeps counting it, so count zero instead)
    same_rules.set_op_handle(**{op: (lambda inputs, outputs: 0) for op in NOT_MACS})
    return {
        "total": default.total(),
        "by_operator": dict(default.by_operator()),
        "unsupported": dict(default.unsupported_ops()),
        "same_rules_total": same_rules.total(),
    }


def build(source, name):
    if source == "zoo":
        return create_model(name, num_classes=1000)
    return getattr(torchvision.models, name)()


def traced(name, source="tv"):
    # Counting needs shapes, not trained or even initialised weights: skip the costly init.
    with torch.device("meta"):
        model = build(source, name).eval()
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            t.zero_()
    x = torch.randn(1, 3, 224, 224)
    counts = fvcore_counts(model, x)
    counts["params"] = parameter_count(model)[""]
    return model.to("meta"), counts  # weights are no longer needed, only shapes


CNNS = [(source, name) for source in ("tv", "zoo") for name in ("resnet50", "vgg16", "mobilenet_v2")]


@pytest.fixture(scope="module", params=CNNS, ids=[f"{s}:{n}" for s, n in CNNS])
def cnn(request):
    source, name = request.param
    model, counts = traced(name, source)
    return name, model, counts


@pytest.fixture(scope="module")
def vit_b_16():
    return traced("vit_b_16")


PUBLISHED = {  # torchvision weight tables: GFLOPS (their "FLOPS" are MACs) and parameter counts
    "resnet50": (torchvision.models.ResNet50_Weights.IMAGENET1K_V1, 4.089),
    "vgg16": (torchvision.models.VGG16_Weights.IMAGENET1K_V1, 15.47),
    "mobilenet_v2": (torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1, 0.301),
    "vit_b_16": (torchvision.models.ViT_B_16_Weights.IMAGENET1K_V1, 17.564),
}


def test_cnn_macs_match_fvcore_within_one_percent(cnn):
    name, model, fv = cnn
    ours = count_macs(model, torch.zeros(1, 3, 224, 224, device="meta"))
    assert abs(ours.total - fv["same_rules_total"]) <= 0.01 * fv["same_rules_total"]
    # op by op: convolutions and linear layers agree exactly
    assert ours.by_op["convolution"] == fv["by_operator"]["conv"]
    assert ours.by_op["addmm"] == fv["by_operator"]["linear"]
    # and the rest of fvcore's default total is exactly the non-MAC ops we report but do not count
    left_out = sum(v for k, v in fv["by_operator"].items() if k in ("batch_norm", "adaptive_avg_pool2d"))
    assert ours.total + left_out == fv["total"]
    if name != "mobilenet_v2":  # BN is 0.5% of ResNet-50, none of VGG: within 1% even of fvcore's default
        assert abs(ours.total - fv["total"]) <= 0.01 * fv["total"]
    weights, gmacs = PUBLISHED[name]
    assert round(ours.total / 1e9, 3) == pytest.approx(gmacs, abs=1e-3)


def test_parameter_counts_are_exact(cnn, vit_b_16):
    name, model, fv = cnn
    for n, m, oracle in ((name, model, fv["params"]), ("vit_b_16", vit_b_16[0], vit_b_16[1]["params"])):
        counts = count_parameters(m)
        weights, _ = PUBLISHED[n]
        assert counts.total == weights.meta["num_params"] == oracle
        assert counts.trainable == counts.total and counts.per_module[""] == (counts.total, counts.total)


def hand_count_vit(layers=12, tokens=197, dim=768, heads=12, mlp=3072, patch=16, size=224, classes=1000):
    patches = (size // patch) ** 2
    patch_embed = patches * dim * (3 * patch * patch)
    qkv = tokens * dim * 3 * dim
    scores = heads * tokens * tokens * (dim // heads)  # Q K^T
    mix = heads * tokens * tokens * (dim // heads)  # A V
    out_proj = tokens * dim * dim
    mlp_macs = 2 * tokens * dim * mlp
    head = dim * classes  # class token only
    return patch_embed + layers * (qkv + scores + mix + out_proj + mlp_macs) + head


def test_vit_b16_difference_from_fvcore_explained_op_by_op(vit_b_16):
    model, fv = vit_b_16
    ours = count_macs(model, torch.zeros(1, 3, 224, 224, device="meta"))
    attention = 12 * 2 * 12 * 197 * 197 * 64  # QK^T and AV in each of the 12 blocks
    # 1. fvcore skips the fused attention op entirely (it has no handle for it) ...
    assert fv["unsupported"]["aten::scaled_dot_product_attention"] == 12
    # 2. ... while it counts layer norm, which we report as normalisation instead of MACs;
    assert ours.calls["normalisation"]["native_layer_norm"] == 25
    # 3. patch embedding and every linear layer agree exactly.
    assert ours.by_op["convolution"] == fv["by_operator"]["conv"]
    linear = ours.by_op["addmm"] + ours.by_op["mm"]
    assert linear == fv["by_operator"]["linear"]
    # On the meta device attention decomposes into batched matmuls; on CPU it is one fused op.
    assert ours.by_op["bmm"] + ours.by_op["_scaled_dot_product_flash_attention_for_cpu"] == attention
    assert ours.total == fv["total"] - fv["by_operator"]["layer_norm"] + attention
    assert ours.total == hand_count_vit()
    assert round(ours.total / 1e9, 3) == PUBLISHED["vit_b_16"][1]


def test_fused_attention_op_counted_on_a_real_forward():
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=24, num_classes=5
    ).eval()
    with torch.no_grad():  # the eval/no-grad fast path would hide everything in one fused op
        ours = count_macs(vit, torch.randn(2, 3, 32, 32))
    fused = [op for op in ours.by_op if "scaled_dot_product" in op]
    assert fused, dict(ours.by_op)
    expected = 2 * hand_count_vit(layers=2, tokens=17, dim=16, heads=2, mlp=24, patch=8, size=32, classes=5)
    assert ours.total == expected
    assert torch.backends.mha.get_fastpath_enabled()  # restored after tracing


def test_zoo_vit_b16_matches_the_hand_count():
    with torch.device("meta"):
        vit = create_model("vit_b_16", num_classes=1000).eval()
        macs = count_macs(vit, torch.zeros(1, 3, 224, 224))
    assert macs.total == hand_count_vit()
    assert count_parameters(vit).total == PUBLISHED["vit_b_16"][0].meta["num_params"]


@pytest.mark.parametrize("source", ["tv", "zoo"])
def test_mobilenet_v3_small_gap_to_fvcore_default_is_what_the_guide_says(source):
    # guide, section 4: within 1% of fvcore with its BN and pooling counts off; fvcore's default
    # total up to 6% higher on MobileNets (it said 5%, and MobileNetV3-Small is 5.5% higher)
    model, fv = traced("mobilenet_v3_small", source)
    ours = count_macs(model, torch.zeros(1, 3, 224, 224, device="meta"))
    assert abs(ours.total - fv["same_rules_total"]) <= 0.01 * fv["same_rules_total"]
    assert 0.05 < fv["total"] / ours.total - 1 < 0.06
    assert round(ours.total / 1e9, 3) == pytest.approx(torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1.meta["_ops"], abs=1e-3)
