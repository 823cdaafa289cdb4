"""COCO box evaluation: cvpipe against pycocotools on the same synthetic data, same run.

    python benchmarks/bench_coco_eval.py [--images 1000] [--classes 80] [--dets 100] [--repeat 1]

The data look like a detector's output on COCO val: ~7 ground truths per image over 80
non-contiguous category ids (2% crowd), objects in all three area ranges, and ``--dets``
detections per image (jittered copies of the objects plus false positives), scores
continuous. Both tools read the same two JSON files. Times are the best of ``--repeat`` runs;
the 12 numbers must agree to 1e-9 (the script exits with status 1 otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def make_data(n_images: int, n_classes: int, dets_per_image: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    cat_ids = np.sort(rng.choice(np.arange(1, 91), n_classes, replace=False))
    images = [{"id": int(i) + 1, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in range(n_images)]
    n_gt = rng.poisson(7, n_images)
    img_of_gt = np.repeat(np.arange(n_images), n_gt)
    G = len(img_of_gt)
    side = np.exp(rng.uniform(np.log(6), np.log(400), G))
    wh = np.stack([side * np.exp(rng.normal(0, 0.35, G)), side * np.exp(rng.normal(0, 0.35, G))], 1).clip(2, 600)
    xy = rng.uniform(0, 1, (G, 2)) * np.maximum(np.array([640, 480]) - wh, 1)
    gt_boxes = np.concatenate([xy, wh], 1)
    gt_cat = rng.choice(cat_ids, G)
    crowd = rng.random(G) < 0.02
    anns = [{"id": j + 1, "image_id": int(img_of_gt[j]) + 1, "category_id": int(gt_cat[j]), "bbox": gt_boxes[j].tolist(),
             "area": float(gt_boxes[j, 2] * gt_boxes[j, 3]), "iscrowd": int(crowd[j])} for j in range(G)]
    # detections: up to 3 jittered copies per object, the rest of each image's budget false positives
    copies = rng.integers(0, 4, G)
    src = np.repeat(np.arange(G), copies)
    jitter = rng.normal(0, 1, (len(src), 4)) * rng.choice([0.03, 0.1, 0.25], (len(src), 1))
    tb = gt_boxes[src] + jitter * np.concatenate([gt_boxes[src, 2:], gt_boxes[src, 2:]], 1)
    tb[:, 2:] = np.maximum(tb[:, 2:], 1)
    t_cat = np.where(rng.random(len(src)) < 0.9, gt_cat[src], rng.choice(cat_ids, len(src)))
    t_img = img_of_gt[src]
    t_score = rng.beta(4, 2, len(src))
    n_tp = np.bincount(t_img, minlength=n_images)
    n_fp = np.maximum(dets_per_image - n_tp, 0)
    f_img = np.repeat(np.arange(n_images), n_fp)
    fs = np.exp(rng.uniform(np.log(6), np.log(300), len(f_img)))
    fb = np.stack([rng.uniform(0, 600, len(f_img)), rng.uniform(0, 440, len(f_img)), fs, fs * rng.uniform(0.5, 2, len(f_img))], 1)
    f_cat = rng.choice(cat_ids, len(f_img))
    f_score = rng.beta(1.5, 5, len(f_img))
    boxes, cats = np.concatenate([tb, fb]), np.concatenate([t_cat, f_cat])
    imgs, scores = np.concatenate([t_img, f_img]), np.concatenate([t_score, f_score])
    results = [{"image_id": int(imgs[j]) + 1, "category_id": int(cats[j]), "bbox": boxes[j].round(2).tolist(),
                "score": round(float(scores[j]), 5)} for j in range(len(imgs))]
    categories = [{"id": int(c), "name": f"class{c}", "supercategory": "thing"} for c in cat_ids]
    return {"images": images, "annotations": anns, "categories": categories}, results


def time_pycocotools(gt_path, res_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(res_path))
        t1 = time.perf_counter()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        t2 = time.perf_counter()
    return np.array(ev.stats), t1 - t0, t2 - t1


def time_cvpipe(gt_path, res_path):
    from cvpipe.detection import read_dataset
    from cvpipe.detection.evaluation import load_for_evaluation
    from cvpipe.detection.evaluation.coco import evaluate_arrays

    t0 = time.perf_counter()
    gt, dets = load_for_evaluation(read_dataset(gt_path, "coco"), res_path, pred_format="coco")
    t1 = time.perf_counter()
    result = evaluate_arrays(gt, dets)
    t2 = time.perf_counter()
    return result.stats, t1 - t0, t2 - t1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--dets", type=int, default=100, help="detections per image")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    gt, results = make_data(args.images, args.classes, args.dets)
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, res_path = Path(tmp) / "gt.json", Path(tmp) / "results.json"
        gt_path.write_text(json.dumps(gt))
        res_path.write_text(json.dumps(results))
        print(f"data: {args.images} images, {len(gt['annotations'])} ground truths, {len(results)} detections, "
              f"{args.classes} classes; machine: {platform.machine()}, {platform.python_version()}")
        ref = min((time_pycocotools(gt_path, res_path) for _ in range(args.repeat)), key=lambda r: r[1] + r[2])
        new = min((time_cvpipe(gt_path, res_path) for _ in range(args.repeat)), key=lambda r: r[1] + r[2])
    diff = float(np.max(np.abs(ref[0] - new[0])))
    print(f"{'':<14}{'load (s)':>10}{'evaluate (s)':>14}{'total (s)':>11}")
    for name, r in (("pycocotools", ref), ("cvpipe", new)):
        print(f"{name:<14}{r[1]:>10.2f}{r[2]:>14.2f}{r[1] + r[2]:>11.2f}")
    print(f"speed-up: evaluate {ref[2] / new[2]:.1f}x, total {(ref[1] + ref[2]) / (new[1] + new[2]):.1f}x")
    print(f"max |difference| of the 12 stats: {diff:.2e}  (AP={new[0][0]:.4f}, AR100={new[0][8]:.4f})")
    return 0 if diff <= 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
