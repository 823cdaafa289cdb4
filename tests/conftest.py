"""Shared test settings: tests run on the CPU, headless, with a private cache folder."""

import os

import pytest
import torch
from hypothesis import settings

# Property tests draw the same examples on every run, so CI cannot go red by chance;
# HYPOTHESIS_PROFILE=explore draws fresh ones when hunting for bugs.
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

os.environ.setdefault("MPLBACKEND", "Agg")
# The suite runs one pytest worker per core; more intra-op threads than cores makes OpenMP
# spin-wait, which slows tiny ops a hundredfold.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    # The embedded dataset is materialised once per test session, never in the user's cache.
    monkeypatch.setenv("CVPIPE_CACHE", str(tmp_path_factory.getbasetemp() / "cvpipe-cache"))
