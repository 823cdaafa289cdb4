"""LR schedules: per-step curves equal torch's own schedulers where they overlap; resume is exact."""

import io
import math
import warnings

import pytest
import torch
from torch.optim import lr_scheduler as tls

from cvpipe.config import ScheduleConfig
from cvpipe.engine.schedules import build_scheduler, lr_factor
from cvpipe.errors import ConfigError

SPE, EPOCHS, LR = 7, 6, 0.4  # 42 optimiser steps
TOTAL = SPE * EPOCHS


def _optimizer(lr=LR, scales=(1.0,)):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in scales]
    groups = [{"params": [p], "lr": lr * s, "lr_scale": s} for p, s in zip(params, scales)]
    return torch.optim.SGD(groups, lr=lr)


def _curve(scheduler, steps=TOTAL):
    """LR of group 0 before each optimiser step, stepping the scheduler after each."""
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
        for _ in range(steps):
            lrs.append(scheduler.optimizer.param_groups[0]["lr"])
            scheduler.optimizer.step()
            scheduler.step()
    return lrs


def _ours(**kw):
    return _curve(build_scheduler(_optimizer(), ScheduleConfig(**kw), SPE, EPOCHS))


def _torch(make):
    opt = _optimizer()
    return _curve(make(opt))


CASES = {
    "step": (dict(name="step", step_size=2, gamma=0.5), lambda o: tls.StepLR(o, step_size=2 * SPE, gamma=0.5)),
    "multistep": (
        dict(name="multistep", milestones=[1, 2.5, 4], gamma=0.3),
        lambda o: tls.MultiStepLR(o, milestones=[SPE, round(2.5 * SPE), 4 * SPE], gamma=0.3),
    ),
    "exponential": (
        dict(name="exponential", gamma=0.5),
        lambda o: tls.ExponentialLR(o, gamma=0.5 ** (1 / SPE)),
    ),
    "cosine": (
        dict(name="cosine", min_lr_ratio=0.1),
        lambda o: tls.CosineAnnealingLR(o, T_max=TOTAL, eta_min=0.1 * LR),
    ),
    "linear": (
        dict(name="linear", min_lr_ratio=0.2),
        lambda o: tls.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=TOTAL),
    ),
    "onecycle": (
        dict(name="onecycle", pct_start=0.25, div_factor=10, final_div_factor=100),
        lambda o: tls.OneCycleLR(o, max_lr=LR, total_steps=TOTAL, pct_start=0.25, div_factor=10,
                                 final_div_factor=100, anneal_strategy="cos", cycle_momentum=False),
    ),
    "constant": (dict(name="constant"), lambda o: tls.ConstantLR(o, factor=1.0, total_iters=1)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch_scheduler(case):
    ours_kw, make = CASES[case]
    assert _ours(**ours_kw) == pytest.approx(_torch(make), rel=1e-9, abs=1e-12)


WARM = 2  # epochs


@pytest.mark.parametrize("case", ["cosine", "linear"])
def test_warmup_then_decay_matches_sequential_lr(case):
    w = WARM * SPE
    main = {
        "cosine": lambda o: tls.CosineAnnealingLR(o, T_max=TOTAL - w, eta_min=0.0),
        "linear": lambda o: tls.LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=TOTAL - w),
    }[case]

    def make(o):
        warm = tls.LinearLR(o, start_factor=0.01, end_factor=1.0, total_iters=w)
        return tls.SequentialLR(o, [warm, main(o)], milestones=[w])

    ours = _ours(name=case, warmup_epochs=WARM, warmup_factor=0.01)
    assert ours == pytest.approx(_torch(make), rel=1e-9, abs=1e-12)
    assert ours[0] == pytest.approx(0.01 * LR) and ours[w] == pytest.approx(LR)


@pytest.mark.parametrize("case", ["step", "multistep", "exponential"])
def test_warmup_chained_with_epoch_schedules(case):
    kw, main = CASES[case]

    def make(o):
        warm = tls.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=WARM * SPE)
        return tls.ChainedScheduler([warm, main(o)])

    ours = _ours(**kw, warmup_epochs=WARM, warmup_factor=0.1)
    assert ours == pytest.approx(_torch(make), rel=1e-9, abs=1e-12)


def test_fractional_warmup_is_rounded_to_steps():
    w = round(0.5 * SPE)
    factors = [lr_factor(ScheduleConfig(name="constant", warmup_epochs=0.5, warmup_factor=0.0), s, SPE, EPOCHS)
               for s in range(w + 2)]
    assert factors == pytest.approx([s / w for s in range(w)] + [1.0, 1.0])


def test_group_ratios_are_kept():
    opt = _optimizer(scales=(1.0, 0.1))
    sched = build_scheduler(opt, ScheduleConfig(name="cosine", warmup_epochs=1), SPE, EPOCHS)
    for _ in range(10):
        opt.step()
        sched.step()
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs[1] == pytest.approx(0.1 * lrs[0])


def test_state_dict_round_trip_continues_the_curve():
    cfg = ScheduleConfig(name="cosine", warmup_epochs=1, min_lr_ratio=0.05)
    full = _curve(build_scheduler(_optimizer(), cfg, SPE, EPOCHS))
    first = build_scheduler(_optimizer(), cfg, SPE, EPOCHS)
    head = _curve(first, 17)
    state = first.state_dict()
    opt_state = first.optimizer.state_dict()
    buffer = io.BytesIO()
    torch.save({"scheduler": state, "optimizer": opt_state}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    opt = _optimizer()
    resumed = build_scheduler(opt, cfg, SPE, EPOCHS)
    opt.load_state_dict(loaded["optimizer"])
    resumed.load_state_dict(loaded["scheduler"])
    assert head + _curve(resumed, TOTAL - 17) == pytest.approx(full, rel=1e-12)


def test_resume_with_more_epochs_recomputes_the_curve():
    cfg = ScheduleConfig(name="cosine")
    short = build_scheduler(_optimizer(), cfg, SPE, EPOCHS)
    _curve(short, 20)
    opt = _optimizer()
    longer = build_scheduler(opt, cfg, SPE, 2 * EPOCHS)
    longer.load_state_dict(short.state_dict())
    expected = [LR * lr_factor(cfg, s, SPE, 2 * EPOCHS) for s in range(20, 2 * TOTAL)]
    assert opt.param_groups[0]["lr"] == pytest.approx(expected[0])
    assert _curve(longer, 2 * TOTAL - 20) == pytest.approx(expected)


def test_start_step_positions_a_new_scheduler():
    cfg = ScheduleConfig(name="step", step_size=1, gamma=0.5)
    opt = _optimizer()
    build_scheduler(opt, cfg, SPE, EPOCHS, start_step=2 * SPE)
    assert opt.param_groups[0]["lr"] == pytest.approx(LR * 0.25)


def test_cosine_ends_at_min_and_stays_there():
    cfg = ScheduleConfig(name="cosine", min_lr_ratio=0.1)
    assert lr_factor(cfg, TOTAL, SPE, EPOCHS) == pytest.approx(0.1)
    assert lr_factor(cfg, TOTAL + 50, SPE, EPOCHS) == pytest.approx(0.1)
    assert lr_factor(cfg, TOTAL // 2, SPE, EPOCHS) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(name="cosin"), "did you mean cosine"),
        (dict(name="onecycle", warmup_epochs=1), "warmup_epochs"),
        (dict(name="cosine", min_lr_ratio=2.0), "min_lr_ratio"),
        (dict(name="step", step_size=0), "step_size"),
        (dict(warmup_factor=-0.1), "warmup_factor"),
    ],
)
def test_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        build_scheduler(_optimizer(), ScheduleConfig(**kw), SPE, EPOCHS)
