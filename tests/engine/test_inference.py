"""Collecting outputs over a loader, including a process whose shard is empty."""

import torch

from cvpipe.data.datasets import ImageDataset
from cvpipe.data.loaders import build_loader
from cvpipe.engine.inference import collect_outputs
from cvpipe.models import create_model


def test_empty_shard_keeps_the_target_shape():
    model = create_model("lenet", num_classes=3, in_chans=3)
    empty = ImageDataset([], torch.zeros((0, 3)), ["a", "b", "c"], multi_label=True)
    logits, targets = collect_outputs(model, build_loader(empty, 4, train=False, workers=0, seed=0),
                                      torch.device("cpu"), show_progress=False)
    assert logits.shape == (0, 3) and targets.shape == (0, 3) and targets.dtype == torch.float32
    single = ImageDataset([], [], ["a", "b"])
    _, targets = collect_outputs(model, build_loader(single, 4, train=False, workers=0, seed=0),
                                 torch.device("cpu"), show_progress=False)
    assert targets.shape == (0,) and targets.dtype == torch.int64
