"""Two processes with the gloo backend train exactly like one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import cvpipe
from cvpipe.engine.checkpoint import load_checkpoint

from .synthetic import folder_dataset
from .test_classify_e2e import fast, read_csv


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_two_process_gloo_matches_single_process(tmp_path):
    data = folder_dataset(tmp_path / "shapes")
    # No BatchNorm in LeNet (per-rank statistics would differ); random augmentation stays on:
    # per-sample seeds follow the global sample position, not the rank. SGD, because Adam's
    # normalisation magnifies float summation noise on near-zero gradients into visible steps.
    overrides = fast(tmp_path, **{"data.root": data, "train.epochs": 2, "data.augment.rotation": 10,
                                  "data.augment.hflip": 0.5, "schedule.name": "cosine", "optim.name": "sgd",
                                  "optim.lr": 0.05})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cvpipe", "train",
           *overrides, "train.name=ddp"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout
    assert proc.stdout.count("best val/acc") == 1  # only rank 0 reports

    single = cvpipe.train(None, overrides + ["train.name=single"])
    ddp_dir = tmp_path / "runs" / "ddp"
    a = load_checkpoint(ddp_dir / "weights" / "last.pt")
    b = load_checkpoint(single.run_dir / "weights" / "last.pt")
    assert a["step"] == b["step"]
    for name, value in b["model"].items():
        torch.testing.assert_close(a["model"][name], value, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")
    ddp_rows, single_rows = read_csv(ddp_dir / "metrics.csv"), read_csv(single.run_dir / "metrics.csv")
    for r1, r2 in zip(ddp_rows, single_rows):
        assert r1["val/acc"] == r2["val/acc"]  # every validation image counted exactly once
        assert float(r1["val/loss"]) == pytest.approx(float(r2["val/loss"]), rel=1e-5)
        assert float(r1["train/loss"]) == pytest.approx(float(r2["train/loss"]), rel=1e-5)
