"""Model EMA: against timm's ModelEmaV3 and the closed form, buffers, DDP, state round trip."""

import io
import math

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from timm.utils import ModelEmaV3

from cvpipe.engine.ema import ModelEMA


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def _train_steps(model, steps, callback):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(5, 3, 6, 6, generator=g)
        opt.zero_grad()
        model(x).logsumexp(1).mean().backward()
        opt.step()
        callback(model)


def test_matches_timm_model_ema_v3_without_warmup():
    model = _net()
    ours = ModelEMA(model, decay=0.9, warmup_steps=0)
    ref = ModelEmaV3(model, decay=0.9, exclude_buffers=True, foreach=False)

    def both(m):
        ours.update(m)
        ref.update(m)

    _train_steps(model, 6, both)
    for a, b in zip(ours.module.state_dict().values(), ref.module.state_dict().values()):
        torch.testing.assert_close(a, b)
    # the average really lags the model; buffers are copied, not averaged
    assert not torch.allclose(ours.module[0].weight, model[0].weight)
    torch.testing.assert_close(ours.module[1].running_mean, model[1].running_mean)
    assert ours.module[1].num_batches_tracked == model[1].num_batches_tracked == 6


def test_warmup_ramp_closed_form():
    w = torch.nn.Parameter(torch.zeros(1))
    model = nn.Module()
    model.w = w
    ema = ModelEMA(model, decay=0.99, warmup_steps=3)
    expected, values = 0.0, [1.0, 2.0, 3.0, 4.0]
    for i, v in enumerate(values, start=1):
        with torch.no_grad():
            w.fill_(v)
        ema.update(model)
        d = 0.99 * (1 - math.exp(-i / 3))
        expected = d * expected + (1 - d) * v
        assert ema.current_decay() == pytest.approx(d)
        assert ema.module.w.item() == pytest.approx(expected, rel=1e-6)


def test_copy_is_eval_and_frozen_and_independent():
    model = _net().train()
    ema = ModelEMA(model)
    assert not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert not torch.equal(ema.module[0].weight, model[0].weight)


def test_state_dict_round_trip_with_weights_only():
    model = _net()
    ema = ModelEMA(model, decay=0.8, warmup_steps=5)
    _train_steps(model, 3, ema.update)
    buffer = io.BytesIO()
    torch.save({"ema": ema.state_dict()}, buffer)
    buffer.seek(0)
    restored = ModelEMA(_net(), decay=0.8, warmup_steps=5)
    restored.load_state_dict(torch.load(buffer, weights_only=True)["ema"])
    assert restored.updates == 3
    for a, b in zip(ema.module.state_dict().values(), restored.module.state_dict().values()):
        torch.testing.assert_close(a, b)
    # both continue identically
    _train_steps(model, 2, lambda m: (ema.update(m), restored.update(m)))
    for a, b in zip(ema.module.state_dict().values(), restored.module.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_works_with_a_ddp_wrapped_model(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = _net()
        plain = ModelEMA(model, decay=0.5, warmup_steps=0)
        ddp = nn.parallel.DistributedDataParallel(model)
        wrapped = ModelEMA(ddp, decay=0.5, warmup_steps=0)
        assert list(wrapped.module.state_dict()) == list(model.state_dict())  # no "module." prefix
        _train_steps(ddp, 2, lambda m: (wrapped.update(m), plain.update(model)))
        for a, b in zip(wrapped.module.state_dict().values(), plain.module.state_dict().values()):
            torch.testing.assert_close(a, b)
    finally:
        dist.destroy_process_group()
