"""Time the default `cvpipe train` against the least a hand-written PyTorch loop can do.

cvpipe: the digits preset end to end (images decoded once into RAM by its ``data.cache``,
per-sample seeded augmentation, validation every epoch, checkpoints, logs, TensorBoard,
curves.png), and the same with ``data.cache=false`` (every image read and decoded per sample).
Baselines, with the same LeNet, epochs, batch size, optimiser and cosine schedule:
- torchvision by hand: ``ImageFolder`` on the same image folder, the same v2 transforms
  (resize, pad + random crop, rotation, normalise), a ``DataLoader`` with as many workers and
  validation every epoch, as a user of torchvision's reference scripts writes it; no
  checkpoints, logs or plots. cvpipe should cost about what this costs.
- bare loop: the digits held in memory as tensors, resized once, with no augmentation, no
  validation and no files written: a lower bound for any training loop on this data.

    python benchmarks/bench_train_digits.py [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def baseline(epochs: int, batch_size: int, lr: float, weight_decay: float, seed: int = 0) -> tuple[float, float]:
    """Seconds spent training, and validation accuracy measured once at the end."""
    from cvpipe.models import create_model

    torch.manual_seed(seed)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    x = (x - x.mean()) / x.std()
    y = torch.tensor(digits.target)
    train_idx, val_idx = train_test_split(np.arange(len(y)), test_size=0.2, stratify=digits.target, random_state=seed)
    xt, yt, xv, yv = x[train_idx], y[train_idx], x[val_idx], y[val_idx]
    model = create_model("lenet_digits", num_classes=10, in_chans=1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * (len(xt) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(xt))
        for i in range(len(xt) // batch_size):
            idx = order[i * batch_size : (i + 1) * batch_size]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        acc = (model(xv).argmax(1) == yv).float().mean().item()
    return seconds, acc


def torchvision_by_hand(root: str, cfg, preprocess: dict, seed: int = 0) -> tuple[float, float]:
    """Seconds in the loop (train + validate each epoch), best validation accuracy."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets
    from torchvision.transforms import v2

    from cvpipe.models import create_model

    torch.manual_seed(seed)
    aug, size = cfg.data.augment, preprocess["image_size"]
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(preprocess["mean"], preprocess["std"])]
    head = [v2.PILToTensor(), v2.Grayscale(1), v2.Resize(size[0], antialias=True), v2.CenterCrop(size)]
    train_tf = v2.Compose([*head, v2.RandomCrop(size, padding=aug.padding), v2.RandomRotation(aug.rotation), *tail])
    full_train = datasets.ImageFolder(root, transform=train_tf)
    full_val = datasets.ImageFolder(root, transform=v2.Compose([*head, *tail]))
    train_idx, val_idx = train_test_split(np.arange(len(full_train)), test_size=cfg.data.val_split,
                                          stratify=full_train.targets, random_state=seed)
    loader_args = dict(batch_size=cfg.train.batch_size, num_workers=cfg.data.workers)
    train_loader = DataLoader(Subset(full_train, train_idx), shuffle=True, drop_last=True, **loader_args)
    val_loader = DataLoader(Subset(full_val, val_idx), **loader_args)
    model = create_model("lenet_digits", num_classes=10, in_chans=1)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    steps = cfg.train.epochs * len(train_loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    best, start = 0.0, time.perf_counter()
    for _ in range(cfg.train.epochs):
        model.train()
        for x, y in train_loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += (model(x).argmax(1) == y).sum().item()
        best = max(best, correct / len(val_idx))
    return time.perf_counter() - start, best


def cvpipe_default(workdir: str, *overrides: str) -> tuple[float, float, float, str]:
    """(seconds in the training loop, seconds end to end, best validation accuracy, run folder)."""
    import cvpipe

    start = time.perf_counter()
    result = cvpipe.train(None, [f"train.project={workdir}/runs", *overrides])
    return result.seconds, time.perf_counter() - start, result.best, str(result.run_dir)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from cvpipe.config import load_config

    cfg = load_config("digits")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CVPIPE_CACHE"] = os.path.join(tmp, "cache")  # includes writing the 1,797 PNGs
        loop_s, total_s, acc, run_dir = cvpipe_default(tmp)
        files_s, files_total_s, files_acc, _ = cvpipe_default(tmp, "data.cache=false")
        preprocess = torch.load(os.path.join(run_dir, "weights", "best.pt"), weights_only=True)["preprocess"]
        hand_s, hand_acc = torchvision_by_hand(os.path.join(tmp, "cache", "digits-v1"), cfg, preprocess)
    base_s, base_acc = baseline(cfg.train.epochs, cfg.train.batch_size, cfg.optim.lr, cfg.optim.weight_decay)
    print(f"# {platform.machine()} CPU, {args.threads} threads, torch {torch.__version__}; "
          f"digits, {cfg.train.epochs} epochs, batch {cfg.train.batch_size}, {cfg.data.workers} loader workers")
    print("| | training loop | end to end | val accuracy |")
    print("|---|---:|---:|---:|")
    print(f"| cvpipe train (defaults, data.cache=true) | {loop_s:.1f} s | {total_s:.1f} s | {acc:.4f} (best epoch) |")
    print(f"| cvpipe train data.cache=false | {files_s:.1f} s | {files_total_s:.1f} s | {files_acc:.4f} (best epoch) |")
    print(f"| torchvision by hand: ImageFolder + v2 + DataLoader | {hand_s:.1f} s | - | {hand_acc:.4f} (best epoch) |")
    print(f"| bare PyTorch loop, in-memory tensors | {base_s:.1f} s | - | {base_acc:.4f} (last epoch) |")
    print(f"ratio cvpipe loop / torchvision by hand: {loop_s / hand_s:.2f}x (without the cache {files_s / hand_s:.2f}x); "
          f"/ bare loop: {loop_s / base_s:.2f}x")

if __name__ == "__main__":
    main()
