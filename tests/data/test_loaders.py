"""Loaders: augmentations repeat per seed, differ per sample/worker/epoch; sharding; balance."""

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import Dataset

from cvpipe.data.loaders import (
    ShardSampler,
    balanced_class_weights,
    balanced_sample_weights,
    build_loader,
    class_counts,
)
from cvpipe.errors import ConfigError


class RandomView(Dataset):
    """Every item is the same image; only the random augmentation tells them apart."""

    def __init__(self, n=16, classes=2):
        self.targets = torch.arange(n) % classes
        self.classes = [str(c) for c in range(classes)]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return torch.rand(4), self.targets[index]  # stands in for a v2 random transform


def batches(loader, epochs=1):
    out = []
    for _ in range(epochs):
        out += [(x.clone(), y.clone()) for x, y in loader]
    return out


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


def test_same_seed_same_batches_whatever_the_workers():
    data = RandomView()
    in_process = batches(build_loader(data, 4, train=True, workers=0, seed=7), epochs=2)
    two_workers = batches(build_loader(data, 4, train=True, workers=2, seed=7), epochs=2)
    assert same(in_process, two_workers)
    assert not same(in_process, batches(build_loader(data, 4, train=True, workers=0, seed=8), epochs=2))


def test_workers_samples_and_epochs_draw_differently():
    loader = build_loader(RandomView(), 4, train=True, workers=2, seed=0)
    epoch0, epoch1 = batches(loader), batches(loader)
    values = torch.cat([x for x, _ in epoch0])
    assert len(torch.unique(values[:, 0])) == len(values)  # no two samples (from either worker) alike
    assert not torch.equal(epoch0[0][0], epoch0[1][0])  # batch 0 (worker 0) vs batch 1 (worker 1)
    assert not same(epoch0, epoch1)


def test_set_epoch_reproduces_an_epoch_for_resume():
    data = RandomView()
    run = build_loader(data, 4, train=True, workers=0, seed=3)
    epochs = [batches(run) for _ in range(3)]
    resumed = build_loader(data, 4, train=True, workers=0, seed=3)
    resumed.set_epoch(2)
    assert same(batches(resumed), epochs[2])
    assert same(batches(resumed), batches(run))  # both went on to epoch 3 by themselves


def test_loading_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    batches(build_loader(RandomView(), 4, train=True, workers=0, seed=0))
    assert torch.equal(torch.rand(3), expected)


def test_train_order_is_a_shuffle_and_drops_the_ragged_batch():
    data = RandomView(n=10)
    loader = build_loader(data, 4, train=True, workers=0, seed=0)
    assert len(loader) == 2  # 10 // 4, the last 2 samples dropped
    single = build_loader(data, 16, train=True, workers=0, seed=0)
    assert len(single) == 1  # fewer samples than a batch: keep them
    ordered = build_loader(data, 4, train=False, workers=0, seed=0)
    assert torch.cat([y for _, y in ordered]).tolist() == data.targets.tolist()


@pytest.mark.parametrize("length", [0, 1, 7, 12])
def test_distributed_eval_sees_each_sample_exactly_once(length, monkeypatch):
    data = RandomView(n=length)
    data.targets = torch.arange(length)
    seen = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        loader = build_loader(data, 2, train=False, workers=0, seed=0, distributed=True)
        seen += [int(i) for _, y in loader for i in y]
    assert sorted(seen) == list(range(length))  # no padding duplicates, nothing lost


def test_shard_sampler_lengths():
    assert [len(ShardSampler(10, r, 4)) for r in range(4)] == [3, 3, 2, 2]
    with pytest.raises(ValueError):
        ShardSampler(10, 4, 4)


def test_distributed_train_shards_and_reshuffles(monkeypatch):
    data = RandomView(n=10)
    data.targets = torch.arange(10)
    shards = {}
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        loader = build_loader(data, 5, train=True, workers=0, seed=1, distributed=True, drop_last=False)
        shards[rank] = [torch.cat([y for _, y in loader]).tolist() for _ in range(2)]
    for epoch in range(2):
        assert sorted(shards[0][epoch] + shards[1][epoch]) == list(range(10))
    assert shards[0][0] != shards[0][1]  # DistributedSampler.set_epoch applied each epoch


def test_balanced_sampling_equalises_classes():
    data = RandomView(n=100)
    data.targets = torch.tensor([0] * 90 + [1] * 10)
    loader = build_loader(data, 50, train=True, workers=0, seed=0, balanced=True)
    drawn = torch.cat([y for _ in range(10) for _, y in loader])
    share = (drawn == 1).float().mean().item()
    assert 0.45 < share < 0.55  # 10% of the data, half of the draws
    with pytest.raises(ConfigError, match="balanced"):
        build_loader(data, 4, train=True, workers=0, seed=0, balanced=True, distributed=True)


def test_class_weights_match_sklearn():
    targets = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)
    data = RandomView(n=10, classes=3)
    data.targets = targets
    counts = class_counts(data)
    assert counts.tolist() == [6, 3, 1]
    expected = compute_class_weight("balanced", classes=np.arange(3), y=targets.numpy())
    assert torch.allclose(balanced_class_weights(counts), torch.tensor(expected, dtype=torch.float32))
    weights = balanced_sample_weights(data)
    assert torch.allclose(torch.stack([weights[targets == c].sum() for c in range(3)]), torch.ones(3, dtype=torch.float64))


def test_multi_label_counts_and_weights():
    data = RandomView(n=4, classes=3)
    data.targets = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 1]], dtype=torch.float32)
    assert class_counts(data).tolist() == [3, 1, 1]
    weights = balanced_sample_weights(data)
    assert weights.tolist() == [pytest.approx(1 / 3), 1.0, 1.0, 1.0]  # rarest positive class; empty row
