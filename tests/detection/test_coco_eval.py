"""COCO evaluation against pycocotools (the oracle) on data built to hit every rule."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from detection_synth import random_coco
from PIL import Image

from cvpipe.detection import evaluate_coco, read_dataset
from cvpipe.detection.evaluation.coco import coco_pair_iou
from cvpipe.errors import DataError

pycocotools = pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def reference(gt_path: Path, results) -> COCOeval:
    """pycocotools, with its progress prints silenced."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def write(tmp_path: Path, gt: dict, results: list) -> tuple[Path, Path]:
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(results))
    return gt_path, res_path


def assert_identical(ours, ev: COCOeval) -> None:
    assert np.max(np.abs(ours.stats - np.array(ev.stats))) <= 1e-9, (ours.stats, ev.stats)
    np.testing.assert_allclose(ours.precision, ev.eval["precision"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.recall, ev.eval["recall"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.scores, ev.eval["scores"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed, integer_boxes", [(0, False), (1, True), (2, False), (3, True)])
def test_twelve_numbers_equal_pycocotools(tmp_path, seed, integer_boxes):
    gt, results = random_coco(seed, n_images=50, n_cats=12, integer_boxes=integer_boxes)
    # the data really contain the hard cases
    ids = [c["id"] for c in gt["categories"]]
    assert ids != list(range(1, len(ids) + 1))
    assert any(a["iscrowd"] for a in gt["annotations"])
    with_gt = {a["image_id"] for a in gt["annotations"]}
    with_dets = {r["image_id"] for r in results}
    all_images = {im["id"] for im in gt["images"]}
    assert all_images - with_gt and all_images - with_dets  # empty images, images without predictions
    per_image = np.bincount([r["image_id"] for r in results])
    assert per_image.max() > 100
    areas = np.array([a["area"] for a in gt["annotations"]])
    assert (areas < 32**2).any() and ((areas > 32**2) & (areas < 96**2)).any() and (areas > 96**2).any()

    gt_path, res_path = write(tmp_path, gt, results)
    ev = reference(gt_path, str(res_path))
    ours = evaluate_coco(gt_path, res_path)
    assert_identical(ours, ev)
    # per-class AP is the mean of the same precision slice
    for k, row in enumerate(ours.per_class()):
        p = ev.eval["precision"][:, :, k, 0, 2]
        assert row["AP"] == pytest.approx(np.mean(p[p > -1]) if (p > -1).any() else -1, abs=1e-12)


def test_perfect_and_partial_predictions_equal_pycocotools(tmp_path):
    gt, _ = random_coco(7, n_images=30, n_cats=5)
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
               for a in gt["annotations"] if not a["iscrowd"]]
    gt_path, _ = write(tmp_path, gt, perfect)
    ours = evaluate_coco(gt_path, write(tmp_path, gt, perfect)[1])
    assert_identical(ours, reference(gt_path, perfect))
    assert ours.stats[0] == pytest.approx(1.0) and ours.stats[8] == pytest.approx(1.0)
    half = perfect[::2]
    assert_identical(evaluate_coco(gt_path, write(tmp_path, gt, half)[1]), reference(gt_path, half))


def test_detections_inside_a_crowd_region_are_ignored_not_false(tmp_path):
    gt = {"images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 200}],
          "annotations": [
              {"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 100, 100], "area": 10000, "iscrowd": 1},
              {"id": 2, "image_id": 1, "category_id": 3, "bbox": [120, 120, 40, 40], "area": 1600, "iscrowd": 0}],
          "categories": [{"id": 3, "name": "person"}]}
    results = [{"image_id": 1, "category_id": 3, "bbox": b, "score": s} for b, s in
               (([10, 10, 20, 20], 0.9), ([50, 50, 30, 30], 0.8), ([120, 120, 40, 40], 0.7), ([5, 60, 20, 20], 0.6))]
    gt_path, res_path = write(tmp_path, gt, results)
    ours = evaluate_coco(gt_path, res_path)
    assert_identical(ours, reference(gt_path, results))
    assert ours.stats[0] == pytest.approx(1.0)  # three crowd detections cost nothing


def test_empty_predictions_give_zero_not_an_error(tmp_path):
    gt, _ = random_coco(4, n_images=10, n_cats=3)
    gt_path, res_path = write(tmp_path, gt, [])
    ours = evaluate_coco(gt_path, res_path)  # pycocotools fails on an empty results list
    assert np.all(ours.stats[[0, 1, 2, 6, 7, 8]] == 0)
    assert set(np.unique(ours.precision)) <= {-1.0, 0.0}


def test_crowd_iou_is_intersection_over_detection_area_like_pycocotools():
    rng = np.random.default_rng(0)
    xywh_d = np.concatenate([rng.uniform(0, 50, (300, 2)), rng.uniform(0, 40, (300, 2))], 1)
    xywh_g = np.concatenate([rng.uniform(0, 50, (300, 2)), rng.uniform(0, 40, (300, 2))], 1)
    xywh_d[:20, 2] = 0  # empty detections: no division by zero
    crowd = rng.random(300) < 0.5
    ours = coco_pair_iou(np.c_[xywh_d[:, :2], xywh_d[:, :2] + xywh_d[:, 2:]],
                         np.c_[xywh_g[:, :2], xywh_g[:, :2] + xywh_g[:, 2:]], crowd)
    ref = np.array([mask_utils.iou([d.tolist()], [g.tolist()], [int(c)])[0, 0]
                    for d, g, c in zip(xywh_d, xywh_g, crowd)])
    # pycocotools multiplies the stored w*h, cvpipe (x2-x1)*(y2-y1): equal to rounding
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-13)
    assert np.array_equal(ours > 0, ref > 0)


def test_yolo_txt_and_voc_files_give_the_same_numbers_as_json(tmp_path):
    gt, results = random_coco(5, n_images=20, n_cats=4, many_dets_images=1)
    gt_path, res_path = write(tmp_path, gt, results)
    reference_stats = evaluate_coco(gt_path, res_path).stats
    ds = read_dataset(gt_path)
    size = {im.id: (im.width, im.height) for im in ds.images}
    name = {im.id: Path(im.file_name).stem for im in ds.images}
    index = {c.id: k for k, c in enumerate(sorted(ds.categories, key=lambda c: c.id))}
    cname = {c.id: c.name for c in ds.categories}
    (tmp_path / "yolo").mkdir()
    (tmp_path / "voc").mkdir()
    yolo_lines, voc_lines = {}, {}
    for r in results:
        if r["category_id"] not in index:
            continue
        x, y, w, h = r["bbox"]
        W, H = size[r["image_id"]]
        yolo_lines.setdefault(name[r["image_id"]], []).append(
            f"{index[r['category_id']]} {(x + w / 2) / W!r} {(y + h / 2) / H!r} {w / W!r} {h / H!r} {r['score']!r}\n")
        voc_lines.setdefault(cname[r["category_id"]], []).append(
            f"{name[r['image_id']]} {r['score']!r} {x + 1!r} {y + 1!r} {x + w!r} {y + h!r}\n")
    for stem, lines in yolo_lines.items():
        (tmp_path / "yolo" / f"{stem}.txt").write_text("".join(lines))
    for cls, lines in voc_lines.items():
        (tmp_path / "voc" / f"comp4_det_test_{cls}.txt").write_text("".join(lines))
    for folder in ("yolo", "voc"):
        stats = evaluate_coco(gt_path, tmp_path / folder).stats
        np.testing.assert_allclose(stats, reference_stats, rtol=0, atol=1e-9)


def test_outputs_table_and_pr_curves(tmp_path):
    gt, results = random_coco(6, n_images=15, n_cats=4, many_dets_images=0)
    gt_path, res_path = write(tmp_path, gt, results)
    ours = evaluate_coco(gt_path, res_path, out_dir=tmp_path / "out")
    text = ours.summary()
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in text
    assert all(c["name"] in text for c in gt["categories"])
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["AP"] == pytest.approx(ours.stats[0])
    with Image.open(tmp_path / "out/pr_curves.png") as im:
        assert im.format == "PNG" and im.size[0] > 300
    assert len((tmp_path / "out/per_class.csv").read_text().splitlines()) == 1 + len(gt["categories"])


def test_summary_lines_are_pycocotools_and_follow_custom_max_dets(tmp_path):
    gt, results = random_coco(8, n_images=12, n_cats=3, many_dets_images=1)
    gt_path, res_path = write(tmp_path, gt, results)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        reference(gt_path, str(res_path)).summarize()
    ours = evaluate_coco(gt_path, res_path).summary().splitlines()[:12]
    assert ours == printed.getvalue().splitlines()[-12:]  # same text, same numbers
    # custom max-dets: the labels say what was used; pycocotools agrees except its stats[0],
    # which looks for a hard-coded 100 and gives -1
    custom = evaluate_coco(gt_path, res_path, max_dets=(1, 5, 20))
    lines = custom.summary().splitlines()
    assert "IoU=0.50:0.95 | area=   all | maxDets= 20 ]" in lines[0] and "maxDets=  5 ]" in lines[7]
    with contextlib.redirect_stdout(io.StringIO()):
        gt_api = COCO(str(gt_path))
        ev = COCOeval(gt_api, gt_api.loadRes(str(res_path)), "bbox")
        ev.params.maxDets = [1, 5, 20]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == -1
    np.testing.assert_allclose(custom.stats[1:], ev.stats[1:], rtol=0, atol=1e-12)
    assert custom.stats[0] == pytest.approx(custom._mean(custom.precision[..., 0, 2]))


def test_detections_with_category_ids_the_ground_truth_lacks_are_warned_about(tmp_path):
    gt, _ = random_coco(9, n_images=6, n_cats=3)
    # the classic mistake: 0-based class indices against the ground truth's ids
    index = {c["id"]: k for k, c in enumerate(gt["categories"])}
    results = [{"image_id": a["image_id"], "category_id": index[a["category_id"]], "bbox": a["bbox"], "score": 1.0}
               for a in gt["annotations"]]
    gt_path, res_path = write(tmp_path, gt, results)
    result = evaluate_coco(gt_path, res_path)
    unknown = sum(r["category_id"] not in index for r in results)
    assert [i.level for i in result.issues] == ["warning"]
    assert f"{unknown} of {len(results)} detections have category ids the ground truth lacks" in result.issues[0].message
    assert_identical(result, reference(gt_path, str(res_path)))  # and they are ignored, as pycocotools does


def test_empty_category_and_scores_above_one_equal_pycocotools(tmp_path):
    gt, results = random_coco(10, n_images=8, n_cats=3, many_dets_images=0)
    gt["categories"].append({"id": 500, "name": "never_annotated"})  # -1 rows, left out of the means
    rng = np.random.default_rng(0)
    for r in results[::3]:
        r["score"] = float(rng.uniform(1, 3))  # unnormalised detector scores
    results += [dict(r, category_id=500) for r in results[:10]]  # detections of the empty category
    gt_path, res_path = write(tmp_path, gt, results)
    ours = evaluate_coco(gt_path, res_path)
    assert_identical(ours, reference(gt_path, str(res_path)))
    k = [c.id for c in ours.categories].index(500)
    assert np.all(ours.precision[:, :, k] == -1) and ours.per_class()[k]["AP"] == -1


def test_results_with_string_scores_or_boolean_ids_are_refused_and_json_numbers_are_not(tmp_path):
    gt, results = random_coco(11, n_images=8, n_cats=3, many_dets_images=0)
    image_one = gt["images"][0]["id"]
    gt["images"][0]["id"] = 1  # so that true would pass for an image id
    for a in gt["annotations"]:
        a["image_id"] = 1 if a["image_id"] == image_one else a["image_id"]
    for r in results:
        r["image_id"] = 1 if r["image_id"] == image_one else r["image_id"]
    # integral scores, float image ids and integral boxes are JSON numbers like any other
    results[0]["score"], results[1]["image_id"], results[2]["bbox"] = 1, float(results[1]["image_id"]), [1, 2, 30, 40]
    gt_path, res_path = write(tmp_path, gt, results)
    assert_identical(evaluate_coco(gt_path, res_path), reference(gt_path, str(res_path)))

    first = next(i for i, r in enumerate(results) if r["image_id"] == 1)
    cases = [
        ("score", str(results[5]["score"]), 5, "score '{}' is a string, not a number (write it without quotes)"),
        ("score", True, 6, "score True is true/false, not a number"),
        ("image_id", True, first, "image_id True is true/false, not an id"),
        ("image_id", "1", first, "image_id '1' is a string, not an id"),
        ("category_id", True, 7, "category_id True is true/false, not an integer"),
        ("bbox", [0, 0, "5", 5], 8, ("bbox [0, 0, '5', 5] is not [x, y, width, height]: value '5' is a string, "
                                     "not a number (write it without quotes)")),
    ]
    for key, value, i, message in cases:
        bad = [dict(r) for r in results]
        bad[i][key] = value
        res_path.write_text(json.dumps(bad))
        with pytest.raises(DataError) as error:
            evaluate_coco(gt_path, res_path)
        assert str(error.value) == f"{res_path}: result [{i}]: {message.format(value)}"
    # what pycocotools does with them: a string score crashes its ranking, and true is image 1
    bad = [dict(r) for r in results]
    bad[5]["score"] = str(bad[5]["score"])
    with pytest.raises(TypeError):
        reference(gt_path, bad)
    bad = [dict(r, image_id=True) if r["image_id"] == 1 else r for r in results]
    assert reference(gt_path, bad).stats.tolist() == reference(gt_path, results).stats.tolist()


def test_a_trip_through_voc_changes_only_the_area_range_numbers(tmp_path):
    from cvpipe.detection import convert

    gt, results = random_coco(3, n_images=60)  # 30% of the objects have a stored area below their box area
    gt_path, res_path = write(tmp_path, gt, results)
    convert(gt_path, tmp_path / "voc", "coco", "voc", images="none")
    convert(tmp_path / "voc", tmp_path / "back", "voc", "coco", images="none")
    before = evaluate_coco(gt_path, res_path).stats
    after = evaluate_coco(tmp_path / "back/annotations/instances.json", res_path).stats
    all_areas, by_area = [0, 1, 2, 6, 7, 8], [3, 4, 5, 9, 10, 11]  # VOC keeps no area: the box area replaces it
    np.testing.assert_allclose(after[all_areas], before[all_areas], rtol=0, atol=1e-12)
    assert np.abs(after[by_area] - before[by_area]).max() > 1e-3


def test_annotation_id_0_as_roboflow_writes_it_is_matched_unlike_pycocotools(tmp_path):
    # Roboflow numbers each split's annotations from 0; pycocotools tests the matched ground
    # truth's id for non-zero, so a perfect detection of annotation 0 counts as a false positive.
    # cvpipe matches it: its numbers equal pycocotools' on the same file with ids from 1.
    gt, results = random_coco(4, n_images=20, n_cats=3)
    gt["annotations"] = [dict(a, id=k) for k, a in enumerate(gt["annotations"])]
    first = next(a for a in gt["annotations"] if not a["iscrowd"])
    first["id"], gt["annotations"][0]["id"] = gt["annotations"][0]["id"], first["id"]
    assert first["id"] == 0
    results.append({"image_id": first["image_id"], "category_id": first["category_id"], "bbox": first["bbox"],
                    "score": 1.0})
    gt_path, res_path = write(tmp_path, gt, results)
    ours = evaluate_coco(gt_path, res_path)
    from_one = tmp_path / "from_one.json"
    from_one.write_text(json.dumps(dict(gt, annotations=[dict(a, id=a["id"] + 1) for a in gt["annotations"]])))
    assert_identical(ours, reference(from_one, str(res_path)))
    assert reference(gt_path, str(res_path)).stats[1] < ours.stats[1]  # pycocotools' AP50 drops on id 0
