"""Parameters, activation memory, latency, the structure tree and the whole profile report."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from cvpipe.analysis import (
    activation_memory,
    count_macs,
    count_parameters,
    format_tree,
    measure_latency,
    profile_model,
    summarize,
)


def tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    ).eval()


def test_parameters_shared_frozen_and_per_module():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.BatchNorm1d(4), nn.Linear(4, 2))
    model[4].weight.requires_grad_(False)
    counts = count_parameters(model)
    assert counts.total == 20 + 8 + 10  # the shared layer once
    assert counts.trainable == counts.total - 8
    assert counts.frozen == 8
    assert counts.buffers == 4 + 4 + 1  # running mean, var, num_batches_tracked
    assert counts.per_module["0"] == counts.per_module["2"] == (20, 20)
    assert counts.per_module["4"] == (10, 2)
    assert counts.per_module[""] == (counts.total, counts.trainable)


def test_inference_peak_and_training_memory_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1)).eval()
    x = torch.randn(2, 3, 16, 16)
    conv1, relu, conv2 = (2 * c * 16 * 16 * 4 for c in (8, 8, 4))  # float32 bytes
    memory = activation_memory(model, x)
    # Sequential holds one tensor while computing the next: conv1+relu, then relu+conv2.
    assert memory.inference_peak_bytes == max(conv1 + relu, relu + conv2)
    # Backward needs conv1's input, the ReLU output (for ReLU and for conv2): weights excluded.
    assert memory.training_saved_bytes == x.numel() * 4 + relu
    assert memory.batch == 2


def test_parameters_are_not_activations():
    model = nn.Sequential(nn.Flatten(), nn.Linear(1000, 1000)).eval()  # 4 MB of weights
    memory = activation_memory(model, torch.randn(1, 1000))
    assert memory.inference_peak_bytes == 1000 * 4  # only the output


def test_latency_measures_the_forward():
    model = tiny_cnn()
    latency = measure_latency(model, torch.randn(3, 3, 16, 16), warmup=1, runs=4)
    assert latency.batch == 3 and latency.runs == 4
    assert 0 < latency.min_ms <= latency.median_ms <= latency.max_ms
    assert latency.images_per_second == pytest.approx(3000 / latency.median_ms)
    with pytest.raises(ValueError):
        measure_latency(model, torch.randn(1, 3, 8, 8), runs=0)


def test_structure_rows_add_up():
    model = tiny_cnn()
    x = torch.randn(1, 3, 16, 16)
    rows = {r.name: r for r in summarize(model, x)}
    macs = count_macs(model, x)
    assert rows[""].macs == macs.total
    assert rows["0.0"].macs == 16 * 16 * 8 * 3 * 9
    assert rows["0"].macs == rows["0.0"].macs  # BN and ReLU are not MACs
    assert rows["1"].macs == 8 * 8 * 16 * 8 * 9
    assert rows["4"].macs == 16 * 4
    assert rows[""].macs == rows["0"].macs + rows["1"].macs + rows["4"].macs
    assert rows["1"].output_shape == (1, 16, 8, 8) and rows["3"].output_shape == (1, 16)
    assert rows["0.0"].params == 8 * 3 * 9 + 8 and rows["0.0"].depth == 2
    text = format_tree(list(rows.values()), max_depth=1)
    assert "0 (Sequential)" in text and "0.0" not in text and "[1, 16, 8, 8]" in text


def test_profile_report_text_json_and_plots(tmp_path):
    model = tiny_cnn()
    model.train()
    profile = profile_model(model, imgsz=(16, 20), batch=2, name="tiny", latency_runs=2, warmup=1)
    assert model.training  # restored
    assert profile.input_shape == (2, 3, 16, 20)
    assert profile.macs.total == count_macs(model.eval(), torch.randn(2, 3, 16, 20)).total
    assert profile.macs_per_image * 2 == profile.macs.total
    assert profile.params.total == sum(p.numel() for p in model.parameters())
    assert profile.memory.inference_peak_bytes > 0 and profile.memory.training_saved_bytes > 0
    text = profile.to_text(depth=1)
    for needle in ("FLOPs = 2 x MACs", "per image", "op coverage", "native_batch_norm", "latency", "receptive field"):
        assert needle in text, needle
    data = json.loads(json.dumps(profile.to_dict()))
    assert data["macs"]["flops_per_image"] == 2 * data["macs"]["per_image"]
    assert data["params"]["total"] == profile.params.total
    assert 0 < data["macs"]["counted_share"] < 1
    for path in profile.save_plots(tmp_path):
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        assert pixels.shape[0] > 200 and pixels.shape[1] > 200 and pixels.std() > 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile_cost.png", "profile_rf.png"]


def test_profile_without_latency_and_single_channel_input():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 1, 12, 12))  # materialise the lazy layer
    profile = profile_model(model, 12, latency_runs=0)
    assert profile.latency is None and profile.input_shape == (1, 1, 12, 12)
    assert "latency" not in profile.to_text()
