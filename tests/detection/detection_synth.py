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


SHAPES = ("circle", "square", "triangle")


def _draw(draw, shape: str, box, colour) -> None:
    x0, y0, x1, y1 = box  # inclusive pixel coordinates, 0-based
    if shape == "circle":
        draw.ellipse([x0, y0, x1, y1], fill=colour)
    elif shape == "square":
        draw.rectangle([x0, y0, x1, y1], fill=colour)
    else:
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=colour)


def draw_voc_dataset(root: Path, n_images: int = 8, seed: int = 0, classes=SHAPES, ext: str = ".jpg") -> list[dict]:
    """Draw shapes on noisy backgrounds and write a Pascal VOC dataset by hand (XML as text, so
    the reader is tested against files cvpipe did not write).

    Returns the truth: one dict per image with ``file``, ``width``, ``height``, ``split`` and
    ``objects`` = ``[(name, xmin, ymin, xmax, ymax, difficult)]`` in VOC's 1-based inclusive
    integers. Image 2 has no objects; about one object in five is difficult; images
    alternate between train and val; the last image is a PNG.
    """
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    root = Path(root)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    truth = []
    for n in range(n_images):
        W, H = int(rng.integers(80, 120)), int(rng.integers(60, 90))
        background = rng.integers(0, 120, (H, W, 3), dtype=np.uint8) + rng.integers(0, 60, 3, dtype=np.uint8)
        image = Image.fromarray(background)
        draw = ImageDraw.Draw(image)
        objects = []
        for _ in range(0 if n == 2 else int(rng.integers(1, 5))):
            name = str(rng.choice(classes))
            w, h = int(rng.integers(6, W // 2)), int(rng.integers(6, H // 2))
            xmin, ymin = int(rng.integers(1, W - w + 1)), int(rng.integers(1, H - h + 1))
            xmax, ymax = xmin + w - 1, ymin + h - 1
            _draw(draw, name, (xmin - 1, ymin - 1, xmax - 1, ymax - 1), tuple(int(v) for v in rng.integers(130, 256, 3)))
            objects.append((name, xmin, ymin, xmax, ymax, int(rng.random() < 0.2)))
        suffix = ".png" if n == n_images - 1 else ext
        file = f"{n:06d}{suffix}"
        image.save(root / "JPEGImages" / file)
        split = "train" if n % 2 == 0 else "val"
        truth.append({"file": file, "width": W, "height": H, "split": split, "objects": objects})
        (root / "Annotations" / f"{n:06d}.xml").write_text(voc_xml(file, W, H, objects), encoding="utf-8")
    for split in ("train", "val"):
        stems = [Path(t["file"]).stem for t in truth if t["split"] == split]
        (root / "ImageSets/Main" / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))
    return truth


def voc_xml(file: str, width: int, height: int, objects) -> str:
    """A VOC annotation as text: objects are ``(name, xmin, ymin, xmax, ymax, difficult)``."""
    parts = [f"<annotation><folder>VOC</folder><filename>{file}</filename>",
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size><segmented>0</segmented>"]
    for name, x0, y0, x1, y1, difficult in objects:
        parts.append(f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated>"
                     f"<difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
                     f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
    parts.append("</annotation>")
    return "\n".join(parts)


def canonical(ds) -> list[tuple]:
    """The dataset's content independent of order: (split, file, class name, box, ignore) per
    object plus (split, file, None, None, None) per image, sorted."""
    names = {c.id: c.name for c in ds.categories}
    rows = [(im.split, im.file_name, "", (), False) for im in ds.images]
    for j in range(ds.num_objects):
        im = ds.images[ds.image_index[j]]
        rows.append((im.split, im.file_name, names[int(ds.category_id[j])], tuple(float(v) for v in ds.boxes[j]),
                     bool(ds.ignore[j])))
    return sorted(rows)


def assert_same_content(a, b, atol: float = 1e-9) -> None:
    """Same images, splits, classes and ignore flags; boxes equal within ``atol`` pixels."""
    ca, cb = canonical(a), canonical(b)
    assert [r[:3] + r[4:] for r in ca] == [r[:3] + r[4:] for r in cb]
    for ra, rb in zip(ca, cb):
        assert len(ra[3]) == len(rb[3]) and np.allclose(ra[3], rb[3], rtol=0, atol=atol), (ra, rb)
