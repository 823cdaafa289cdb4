"""Synthetic detection data for the tests: COCO-style ground truth and results with the cases
that make evaluation hard, and small datasets with real images (shapes drawn on backgrounds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def random_coco(seed: int = 0, n_images: int = 60, n_cats: int = 12, crowd_rate: float = 0.06,
                many_dets_images: int = 3, integer_boxes: bool = False):
    """(ground-truth COCO dict, results list) covering: non-contiguous category ids and image
    ids, crowd boxes, empty images, images without predictions, > 100 detections in some
    images, objects in all three area ranges, stored areas that differ from the box area,
    tied scores and predictions for categories the ground truth does not have."""
    rng = np.random.default_rng(seed)
    cat_ids = np.sort(rng.choice(np.arange(1, 200), n_cats, replace=False))
    image_ids = rng.choice(np.arange(1, 10_000), n_images, replace=False)
    images, anns, results = [], [], []
    for n, iid in enumerate(image_ids):
        W, H = int(rng.integers(300, 800)), int(rng.integers(300, 800))
        images.append({"id": int(iid), "file_name": f"img_{n:04d}.jpg", "width": W, "height": H})
        n_gt = 0 if n % 10 == 3 else int(rng.integers(1, 14))  # some images have no objects
        gts = []
        for _ in range(n_gt):
            side = np.exp(rng.uniform(np.log(4), np.log(350)))  # small, medium and large
            w, h = side * np.exp(rng.normal(0, 0.3)), side * np.exp(rng.normal(0, 0.3))
            x, y = rng.uniform(0, max(W - w, 1)), rng.uniform(0, max(H - h, 1))
            box = [x, y, w, h]
            if integer_boxes:
                box = [float(round(v)) for v in box]
                box[2], box[3] = max(box[2], 1.0), max(box[3], 1.0)
            crowd = int(rng.random() < crowd_rate)
            area = box[2] * box[3] * (rng.uniform(0.5, 1.0) if rng.random() < 0.3 else 1.0)
            cat = int(rng.choice(cat_ids))
            anns.append({"id": len(anns) + 1, "image_id": int(iid), "category_id": cat, "bbox": box,
                         "area": area, "iscrowd": crowd})
            gts.append((box, cat))
        if n % 10 == 7:
            continue  # no predictions for this image
        dets = []
        for box, cat in gts:
            for _ in range(int(rng.integers(0, 4))):
                jitter = rng.normal(0, rng.choice([0.02, 0.08, 0.2]), 4) * np.array([box[2], box[3], box[2], box[3]])
                b = [box[0] + jitter[0], box[1] + jitter[1], max(box[2] + jitter[2], 1), max(box[3] + jitter[3], 1)]
                c = cat if rng.random() < 0.9 else int(rng.choice(cat_ids))
                dets.append((b, c))
        n_fp = 130 if n < many_dets_images else int(rng.integers(0, 6))
        for _ in range(n_fp):
            side = np.exp(rng.uniform(np.log(4), np.log(300)))
            dets.append(([rng.uniform(0, W - side / 2), rng.uniform(0, H - side / 2), side, side * rng.uniform(0.5, 2)],
                         int(rng.choice(cat_ids))))
        if n % 10 == 5:
            dets.append(([10.0, 10.0, 50.0, 50.0], 999))  # a category the ground truth lacks
        for b, c in dets:
            if integer_boxes:
                b = [float(round(v)) for v in b]
                b[2], b[3] = max(b[2], 1.0), max(b[3], 1.0)
            score = float(np.round(rng.random(), 2))  # two decimals: many exact ties
            results.append({"image_id": int(iid), "category_id": int(c), "bbox": [float(v) for v in b], "score": score})
    categories = [{"id": int(c), "name": f"class_{c}", "supercategory": "thing"} for c in cat_ids]
    gt = {"info": {"description": "synthetic"}, "licenses": [], "images": images, "annotations": anns,
          "categories": categories}
    return gt, results
