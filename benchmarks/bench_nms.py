"""Time cvpipe's NMS family against its baselines, in the same run, and print the ratios.

Baselines:
* hard NMS: ``torchvision.ops.batched_nms`` (the compiled kernel cvpipe wraps; goal: within 5%);
* every other variant: a per-class Python loop in the style of the yolov3 post-processor the
  notes describe (for each class, take the top box, compare it with the rest, filter, repeat);
  goal: soft, DIoU and weighted NMS at least 10x faster at 5k boxes.

Data: YOLO-like candidates on a 640x640 image, 80 classes; every object yields about eight
jittered boxes with random scores, so there is real suppression to do.

Run: ``python benchmarks/bench_nms.py`` (about a minute on a 2-core CPU). ``--sizes`` and
``--repeats`` change the work.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time, fmt_ms  # noqa: E402

from cvpipe.ops import and_nms, diou_nms, matrix_nms, nms, soft_nms, weighted_nms  # noqa: E402

NUM_CLASSES = 80
IOU = 0.5


def make_candidates(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` boxes around ``n / 8`` objects of random classes, with scores in ``[0.05, 1)``."""
    g = torch.Generator().manual_seed(seed)
    objects = max(1, n // 8)
    centre = torch.rand(objects, 2, generator=g) * 640
    size = 16 + torch.rand(objects, 2, generator=g) * 180
    label = torch.randint(0, NUM_CLASSES, (objects,), generator=g)
    owner = torch.randint(0, objects, (n,), generator=g)
    jitter = 1 + 0.25 * (torch.rand(n, 4, generator=g) - 0.5)
    c, s = centre[owner] * jitter[:, :2].sqrt(), size[owner] * jitter[:, 2:]
    boxes = torch.cat([c - s / 2, c + s / 2], 1)
    scores = 0.05 + 0.95 * torch.rand(n, generator=g)
    return boxes, scores, label[owner]


# ----------------------------------------------------------------------------------------------
# The per-class Python-loop baseline (one box at a time, as in the yolov3 post-processor)
# ----------------------------------------------------------------------------------------------


def _row_iou(box: torch.Tensor, boxes: torch.Tensor, diou: bool = False) -> torch.Tensor:
    lt = torch.maximum(box[:2], boxes[:, :2])
    rb = torch.minimum(box[2:], boxes[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = (box[2:] - box[:2]).prod()
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(1)
    iou = inter / (area + areas - inter)
    if not diou:
        return iou
    outer = (torch.maximum(box[2:], boxes[:, 2:]) - torch.minimum(box[:2], boxes[:, :2])).pow(2).sum(1)
    centre = ((box[:2] + box[2:]) / 2 - (boxes[:, :2] + boxes[:, 2:]) / 2).pow(2).sum(1)
    return iou - centre / (outer + 1e-7)


def loop_nms(boxes, scores, classes, method, iou_threshold=IOU, sigma=0.5, score_threshold=0.001):
    keep = []
    for c in classes.unique():
        index = torch.nonzero(classes == c).squeeze(1)
        index = index[scores[index].argsort(descending=True)]
        dc, ds = boxes[index], scores[index].clone()
        if method == "matrix":  # matrix NMS has no greedy loop: the baseline loops over classes only
            k, _ = matrix_nms(dc, ds)
            keep.append(index[k])
            continue
        while len(index):
            if method == "soft":
                best = int(ds.argmax())
                keep.append(index[best : best + 1])
                iou = _row_iou(dc[best], dc)
                ds = ds * torch.exp(-(iou**2) / sigma)
                live = (ds > score_threshold) & (torch.arange(len(index)) != best)
                index, dc, ds = index[live], dc[live], ds[live]
                continue
            iou = _row_iou(dc[0], dc, diou=method == "diou")
            if method == "and":
                if len(index) == 1:
                    break
                if iou[1:].max() > 0.5:
                    keep.append(index[:1])
            else:
                keep.append(index[:1])
            if method == "weighted":
                cluster = iou > iou_threshold
                w = ds[cluster, None]
                _ = (w * dc[cluster]).sum(0) / w.sum()
            live = iou <= iou_threshold
            live[0] = False
            index, dc, ds = index[live], dc[live], ds[live]
    return torch.cat(keep) if keep else torch.empty(0, dtype=torch.long)


# ----------------------------------------------------------------------------------------------


CVPIPE = {
    "hard": lambda b, s, c: nms(b, s, IOU, classes=c),
    "soft": lambda b, s, c: soft_nms(b, s, classes=c),
    "diou": lambda b, s, c: diou_nms(b, s, IOU, classes=c),
    "weighted": lambda b, s, c: weighted_nms(b, s, IOU, classes=c),
    "and": lambda b, s, c: and_nms(b, s, IOU, classes=c),
    "matrix": lambda b, s, c: matrix_nms(b, s, classes=c),
}


def baseline(method: str):
    if method == "hard":
        return "torchvision batched_nms", lambda b, s, c: torchvision.ops.batched_nms(b, s, c, IOU)
    return "per-class Python loop", lambda b, s, c: loop_nms(b, s, c, method)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000], help="box counts to time")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (fewer at 20k)")
    parser.add_argument("--methods", nargs="+", default=list(CVPIPE), choices=list(CVPIPE), help="variants to time")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady numbers on a shared box)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}; {NUM_CLASSES} classes, IoU {IOU}")
    print("| variant | boxes | cvpipe | baseline | baseline time | speed-up |")
    print("|---|---:|---:|---|---:|---:|")
    for method in args.methods:
        name, base = baseline(method)
        for n in args.sizes:
            boxes, scores, classes = make_candidates(n)
            # The slow loop at 20k boxes takes seconds: fewer repeats there keep the run short.
            repeats = args.repeats if n <= 5000 or method == "hard" else max(1, math.ceil(args.repeats / 5))
            ours = best_time(lambda: CVPIPE[method](boxes, scores, classes), repeats)
            theirs = best_time(lambda: base(boxes, scores, classes), repeats, warmup=1 if method == "hard" else 0)
            print(f"| {method} | {n} | {fmt_ms(ours)} | {name} | {fmt_ms(theirs)} | {theirs / ours:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
