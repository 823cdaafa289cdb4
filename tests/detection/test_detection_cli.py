"""The three commands on a generated dataset with real images: convert, check-detection, det-eval."""

from __future__ import annotations

import json

import numpy as np
import pytest
from detection_synth import draw_voc_dataset

from cvpipe.cli import main
from cvpipe.detection import evaluate_coco, evaluate_voc, read_dataset


@pytest.fixture()
def voc(tmp_path):
    root = tmp_path / "voc"
    draw_voc_dataset(root, n_images=6, seed=5)
    return root


def test_convert_command_reports_a_bad_file_on_one_line_and_converts_the_rest(voc, tmp_path, capsys):
    (voc / "Annotations" / "000003.xml").write_text("<annotation><object>")
    (tmp_path / "map.yaml").write_text("circle: 10\nsquare: 20\ntriangle: 30\n")
    status = main(["convert", str(voc), str(tmp_path / "coco"), "--from", "voc", "--to", "coco", "--min-size", "8",
                   "--category-map", str(tmp_path / "map.yaml")])
    out, err = capsys.readouterr()
    assert status == 1
    assert err.strip().splitlines() == [
        "error: Annotations/000003.xml: cannot be parsed (ParseError: no element found: line 1, column 20); file skipped"]
    assert "5 images" in out and "1 problem in 1 file (listed above), the rest converted" in out
    ds = read_dataset(tmp_path / "coco")
    assert len(ds.images) == 5 and [c.id for c in ds.categories] == [10, 20, 30]
    w, h = ds.boxes[:, 2] - ds.boxes[:, 0], ds.boxes[:, 3] - ds.boxes[:, 1]
    assert np.all(ds.ignore[(w < 8) | (h < 8)])


def test_convert_command_refuses_a_non_empty_destination(voc, tmp_path, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    assert main(["convert", str(voc), str(tmp_path / "busy"), "--to", "yolo"]) == 2
    assert "folder is not empty" in capsys.readouterr().err


def test_det_eval_command_coco_and_voc_protocols(voc, tmp_path, capsys):
    assert main(["convert", str(voc), str(tmp_path / "coco"), "--to", "coco", "--images", "none"]) == 0
    gt = read_dataset(voc)
    rng = np.random.default_rng(0)
    results = []
    names = {c.id: c.name for c in gt.categories}
    voc_files: dict = {}
    for j in range(gt.num_objects):
        im = gt.images[gt.image_index[j]]
        if im.split != "val":
            continue
        x1, y1, x2, y2 = (gt.boxes[j] + rng.normal(0, 1.0, 4)).tolist()
        score = float(rng.random())
        results.append({"image_id": im.id, "category_id": int(gt.category_id[j]),
                        "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
        voc_files.setdefault(names[int(gt.category_id[j])], []).append(
            f"{im.file_name[:-4]} {score!r} {x1 + 1!r} {y1 + 1!r} {x2!r} {y2!r}\n")
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "voc_dets").mkdir()
    for name, lines in voc_files.items():
        (tmp_path / "voc_dets" / f"comp4_det_test_{name}.txt").write_text("".join(lines))
    capsys.readouterr()

    gt_json = tmp_path / "coco/annotations"
    split_json = next(gt_json.glob("instances_val.json"))
    assert main(["det-eval", str(split_json), str(tmp_path / "results.json"), "--out", str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    expected = evaluate_coco(split_json, tmp_path / "results.json")
    assert f"Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = {expected.stats[0]:0.3f}" in out
    assert (tmp_path / "eval/pr_curves.png").is_file()

    # VOC protocols straight from the VOC folder (val split), with VOC-style per-class files
    val_results = tmp_path / "voc_dets"
    for protocol, metric in (("voc07", "11-point"), ("voc", "all-point")):
        assert main(["det-eval", str(voc), str(val_results), "--protocol", protocol, "--split", "val"]) == 0
        out = capsys.readouterr().out
        mean_ap = evaluate_voc(voc, val_results, metric=metric, split="val").mean_ap
        assert f"mAP@0.5 ({metric}) = {mean_ap:.4f}" in out
    # the same detections scored the COCO way from the VOC folder agree with the COCO file
    again = evaluate_coco(voc, val_results, split="val")
    np.testing.assert_allclose(again.stats, expected.stats, atol=1e-9)


def test_det_eval_refuses_predictions_for_unknown_images(voc, tmp_path, capsys):
    (tmp_path / "r.json").write_text(json.dumps([{"image_id": 999, "category_id": 1, "bbox": [0, 0, 5, 5],
                                                  "score": 0.5}]))
    assert main(["det-eval", str(voc), str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "predictions for 1 image not in the ground truth (999); the ground truth's image ids run 1..6, likely " \
           "renumbered by a conversion" in err and "matched by file name" in err and len(err.splitlines()) == 1
    # a COCO ground truth converted through YOLO lost its ids: the results made for it name them
    data = {"images": [{"id": 100 + k, "file_name": f"{k}.jpg", "width": 9, "height": 9} for k in range(8)],
            "annotations": [], "categories": [{"id": 1, "name": "circle"}]}
    (tmp_path / "gt.json").write_text(json.dumps(data))
    (tmp_path / "r.json").write_text(json.dumps([{"image_id": 100 + k, "category_id": 1, "bbox": [0, 0, 5, 5],
                                                  "score": 0.5} for k in range(8)]))
    data["images"] = [dict(im, id=k + 1) for k, im in enumerate(data["images"])]
    (tmp_path / "renumbered.json").write_text(json.dumps(data))
    assert main(["det-eval", str(tmp_path / "gt.json"), str(tmp_path / "r.json")]) == 0
    capsys.readouterr()
    assert main(["det-eval", str(tmp_path / "renumbered.json"), str(tmp_path / "r.json")]) == 2
    assert "predictions for 8 images not in the ground truth (100, 101, 102, 103, 104, ...); the ground truth's " \
           "image ids run 1..8" in capsys.readouterr().err


def test_det_eval_names_what_it_could_not_read_in_predictions_and_ground_truth(voc, tmp_path, capsys):
    good = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}
    for bad, message in (({"category_id": 1.5}, "result [1]: category_id 1.5 is not an integer"),
                         ({"image_id": [1]}, "result [1]: image_id [1] is not an id"),
                         ({"bbox": [0, 0, 5]}, "result [1]: bbox [0, 0, 5] is not [x, y, width, height]"),
                         ({"score": "high"}, "result [1]: score 'high' is a string, not a number"),
                         ({"score": "0.9"}, "result [1]: score '0.9' is a string, not a number (write it without quotes)"),
                         ({"image_id": True}, "result [1]: image_id True is true/false, not an id")):
        (tmp_path / "r.json").write_text(json.dumps([good, dict(good, **bad)]))
        assert main(["det-eval", str(voc), str(tmp_path / "r.json")]) == 2
        assert message in capsys.readouterr().err
    assert main(["det-eval", str(voc), str(tmp_path / "r.json"), "--protocol", "voc", "--iou", "50"]) == 2
    assert "IoU threshold 50.0 must be in [0, 1)" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["det-eval", str(voc), str(tmp_path / "empty")]) == 2
    assert "no .txt prediction files" in capsys.readouterr().err
    # an unreadable ground-truth object is left out of the numbers, and the user is told
    (tmp_path / "r.json").write_text(json.dumps([good]))
    (voc / "Annotations" / "000000.xml").write_text(
        (voc / "Annotations" / "000000.xml").read_text().replace("<xmin>", "<xmin>x", 1))
    assert main(["det-eval", str(voc), str(tmp_path / "r.json")]) == 1
    err = capsys.readouterr().err
    assert "error: Annotations/000000.xml object 0: bndbox/xmin is not a number" in err
    assert "1 ground-truth problem (listed above)" in err
    assert [str(i) for i in evaluate_voc(voc, tmp_path / "r.json").issues if i.level == "error"] == [
        "Annotations/000000.xml object 0: bndbox/xmin is not a number: 'x12'; object skipped"]


def test_unusable_output_folder_or_class_file_is_one_line(voc, tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "r.json").write_text("[]")
    for argv in (["check-detection", str(voc), "--out", str(tmp_path / "a_file")],
                 ["det-eval", str(voc), str(tmp_path / "r.json"), "--out", str(tmp_path / "a_file" / "sub")]):
        assert main(argv) == 2
        assert "cannot write the outputs there" in capsys.readouterr().err
    assert main(["check-detection", str(voc), "--classes", str(tmp_path / "clases.txt")]) == 2
    assert "class file" in capsys.readouterr().err


def test_convert_of_a_source_with_nothing_readable_writes_nothing(tmp_path, capsys):
    (tmp_path / "cut.json").write_text('{"images": [{"id": 1, "file_na')
    assert main(["convert", str(tmp_path / "cut.json"), str(tmp_path / "out"), "--to", "yolo"]) == 1
    out, err = capsys.readouterr()
    assert "cut.json: not valid JSON" in err and "nothing converted" in out
    assert not (tmp_path / "out").exists()


def test_a_format_whose_files_are_absent_is_one_line_naming_the_folder_and_the_likely_format(voc, tmp_path, capsys):
    for argv in (["convert", str(voc), str(tmp_path / "out"), "--from", "txt", "--to", "coco"],
                 ["check-detection", str(voc), "--format", "txt"],
                 ["det-eval", str(voc), str(tmp_path / "r.json"), "--gt-format", "yolo"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(voc) in err and "is it a Pascal VOC dataset?" in err, err
        assert "--format voc" in err
    assert not (tmp_path / "out").exists()
    assert main(["convert", str(voc), str(tmp_path / "txt"), "--to", "txt", "--images", "none"]) == 0
    assert main(["check-detection", str(tmp_path / "txt"), "--format", "voc"]) == 2
    assert "no Annotations/*.xml files" in capsys.readouterr().err


def test_det_eval_refuses_predictions_that_are_not_of_the_stated_format(voc, tmp_path, capsys):
    (tmp_path / "r.json").write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]))
    (tmp_path / "empty").mkdir()
    for pred, fmt, message in (("r.json", "voc", "VOC predictions are a folder of per-class files"),
                               ("r.json", "yolo", "YOLO predictions are a folder"),
                               ("empty", "coco", "COCO predictions are one results .json file"),
                               ("empty", "voc", "no .txt files (VOC predictions are a folder")):
        assert main(["det-eval", str(voc), str(tmp_path / pred), "--pred-format", fmt, "--protocol", "voc"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert main(["det-eval", str(voc), str(tmp_path / "r.json"), "--pred-format", "voc"]) == 2
    assert "not a file; use --pred-format coco" in capsys.readouterr().err


def test_convert_counts_invalid_boxes_it_writes_and_check_detection_lists_them(tmp_path, capsys):
    from PIL import Image

    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}]
    boxes = [[1, 2, 10, 10], [60, 10, 10, 10], [5, 5, 0, 10], [20, 20, -4, 5]]  # fine, outside, empty, negative
    data = {"images": images, "categories": [{"id": 1, "name": "cat"}],
            "annotations": [{"id": k + 1, "image_id": 1, "category_id": 1, "bbox": b} for k, b in enumerate(boxes)]}
    (tmp_path / "images").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "images/a.jpg")
    (tmp_path / "gt.json").write_text(json.dumps(data))
    assert main(["convert", str(tmp_path / "gt.json"), str(tmp_path / "yolo"), "--to", "yolo"]) == 0
    out = capsys.readouterr().out
    assert "1 image, 4 objects (0 ignored); 3 invalid boxes (outside the image, empty or corners swapped) " \
           "written as they are" in out
    assert len(read_dataset(tmp_path / "yolo").boxes) == 4  # nothing dropped or clipped
    assert main(["check-detection", str(tmp_path / "yolo")]) == 1
    out = capsys.readouterr().out
    assert [line.split(": ")[1:3] for line in out.splitlines() if line.startswith("error:")] == [
        ["labels/a.txt", f"line {n}"] for n in (2, 3, 4)]


def test_yolo_prediction_errors_name_the_line(voc, tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred/000001.txt").write_text("0 0.5 0.5 0.2 0.2 0.9\n\n2 0.5 0.5 0.2 0.2 0.8\n7 0.5 0.5 0.2 0.2 0.7\n")
    assert main(["det-eval", str(voc), str(tmp_path / "pred"), "--pred-format", "yolo"]) == 2
    assert f"{tmp_path / 'pred/000001.txt'} line 4: class 7 is not an index 0..2" in capsys.readouterr().err


def test_det_eval_refuses_an_iou_threshold_the_coco_protocol_would_ignore(voc, tmp_path, capsys):
    (tmp_path / "r.json").write_text("[]")
    assert main(["det-eval", str(voc), str(tmp_path / "r.json"), "--iou", "0.7"]) == 2
    assert "--iou 0.7 applies to the VOC protocols" in capsys.readouterr().err
    assert main(["det-eval", str(voc), str(tmp_path / "r.json"), "--iou", "0.7", "--protocol", "voc"]) == 0
    assert "mAP@0.7 (all-point)" in capsys.readouterr().out


def test_det_eval_of_one_split_leaves_out_predictions_for_the_other_splits(voc, tmp_path, capsys):
    ds = read_dataset(voc)
    results = [{"image_id": ds.images[i].id, "category_id": int(ds.category_id[j]),
                "bbox": [float(v) for v in (*ds.boxes[j, :2], *(ds.boxes[j, 2:] - ds.boxes[j, :2]))], "score": 0.9}
               for i, objs in enumerate(ds.objects_by_image()) for j in objs]
    val_ids = {im.id for im in ds.images if im.split == "val"}
    (tmp_path / "all.json").write_text(json.dumps(results))
    (tmp_path / "val.json").write_text(json.dumps([r for r in results if r["image_id"] in val_ids]))
    assert main(["det-eval", str(voc), str(tmp_path / "val.json"), "--split", "val"]) == 0
    expected = capsys.readouterr().out
    # predictions made for the whole dataset: the train images' ones are left out, with a warning
    assert main(["det-eval", str(voc), str(tmp_path / "all.json"), "--split", "val"]) == 0
    out, err = capsys.readouterr()
    assert out == expected
    n_train = len(results) - sum(r["image_id"] in val_ids for r in results)
    assert f"warning: {tmp_path / 'all.json'}: {n_train} of {len(results)} detections are for images of other " \
           "splits than 'val'; they are left out" in err
    # the same for YOLO txt predictions, matched by file name
    (tmp_path / "pred").mkdir()
    for i, objs in enumerate(ds.objects_by_image()):
        im = ds.images[i]
        rows = [(int(ds.category_id[j]) - 1, *((ds.boxes[j, :2] + ds.boxes[j, 2:]) / 2 / (im.width, im.height)),
                 *((ds.boxes[j, 2:] - ds.boxes[j, :2]) / (im.width, im.height)), 0.9) for j in objs]
        (tmp_path / "pred" / f"{im.file_name.rsplit('.', 1)[0]}.txt").write_text(
            "".join(" ".join(f"{v:.12g}" for v in r) + "\n" for r in rows))
    assert main(["det-eval", str(voc), str(tmp_path / "pred"), "--split", "val", "--protocol", "voc"]) == 0
    assert "are for images of other splits than 'val'" in capsys.readouterr().err
    # an image the dataset does not have at all is still an error
    (tmp_path / "other.json").write_text(json.dumps(results + [dict(results[0], image_id=999)]))
    assert main(["det-eval", str(voc), str(tmp_path / "other.json"), "--split", "val"]) == 2
    assert "(999)" in capsys.readouterr().err


def test_convert_summary_counts_only_the_images_yolo_could_take(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "images/a.jpg")
    Image.new("RGB", (48, 64)).save(tmp_path / "images/b.jpg")  # annotated as 64x48: sizes disagree
    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
              {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48}]
    anns = [{"id": k + 1, "image_id": k % 2 + 1, "category_id": 1, "bbox": [1, 2, 10, 10]} for k in range(5)]
    data = {"images": images, "categories": [{"id": 1, "name": "cat"}], "annotations": anns}
    (tmp_path / "gt.json").write_text(json.dumps(data))
    assert main(["convert", str(tmp_path / "gt.json"), str(tmp_path / "yolo"), "--to", "yolo"]) == 1
    out, err = capsys.readouterr()
    assert "b.jpg: size 64x48 in the annotation but the file is 48x64" in err
    assert "1 image, 3 objects (0 ignored); 1 problem in 1 file" in out
    assert len(read_dataset(tmp_path / "yolo").images) == 1
    # no image can be written: nothing is, and the summary says so
    data["images"], data["annotations"] = images[1:], anns[1::2]
    (tmp_path / "gt.json").write_text(json.dumps(data))
    assert main(["convert", str(tmp_path / "gt.json"), str(tmp_path / "yolo2"), "--to", "yolo"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("nothing converted") and "was not written" in out
    assert not (tmp_path / "yolo2").exists()


def test_yolo_predictions_without_confidences_say_how_to_get_them(voc, tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred/000001.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    assert main(["det-eval", str(voc), str(tmp_path / "pred"), "--pred-format", "yolo"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'pred/000001.txt'} line 1: expected 6 values, got 5 (`cls cx cy w h conf`" in err
    assert "save_conf" in err and len(err.splitlines()) == 1


def test_det_eval_warns_that_coco_results_are_matched_by_id_to_a_ground_truth_without_ids(voc, tmp_path, capsys):
    # a COCO dataset whose ids are not in file order goes through YOLO, which stores no ids: its
    # images are numbered 1..N again, and results made for the COCO ids would land on other images
    assert main(["convert", str(voc), str(tmp_path / "coco"), "--to", "coco"]) == 0
    gt_json = tmp_path / "coco/annotations/instances_train.json"
    data = json.loads(gt_json.read_text())
    new_id = {im["id"]: 100 - k for k, im in enumerate(data["images"])}
    data["images"] = [dict(im, id=new_id[im["id"]]) for im in data["images"]]
    data["annotations"] = [dict(a, image_id=new_id[a["image_id"]]) for a in data["annotations"]]
    gt_json.write_text(json.dumps(data))
    assert main(["convert", str(tmp_path / "coco"), str(tmp_path / "yolo"), "--to", "yolo"]) == 0
    yolo = read_dataset(tmp_path / "yolo")
    assert yolo.numbered_ids and not read_dataset(gt_json).numbered_ids
    # results made for the ids of the YOLO dataset itself (1..N): counted, with the warning
    results = [{"image_id": yolo.images[int(yolo.image_index[j])].id, "category_id": int(yolo.category_id[j]),
                "bbox": [float(v) for v in (*yolo.boxes[j, :2], *(yolo.boxes[j, 2:] - yolo.boxes[j, :2]))],
                "score": 0.9} for j in range(yolo.num_objects)]
    (tmp_path / "r.json").write_text(json.dumps(results))
    capsys.readouterr()
    assert main(["det-eval", str(tmp_path / "yolo"), str(tmp_path / "r.json")]) == 0
    out, err = capsys.readouterr()
    assert "maxDets=100 ] = 1.000" in out
    assert f"warning: {tmp_path / 'r.json'}: COCO results are matched to images by image_id, but this yolo ground " \
           "truth stores no image ids" in err and "matched by file name" in err and len(err.splitlines()) == 1
    # a COCO ground truth has its ids: no warning; nor for YOLO txt predictions, matched by file name
    coco_results = [{"image_id": data["images"][0]["id"], "category_id": data["categories"][0]["id"],
                     "bbox": [0, 0, 5, 5], "score": 0.5}]
    (tmp_path / "c.json").write_text(json.dumps(coco_results))
    assert main(["det-eval", str(gt_json), str(tmp_path / "c.json")]) == 0
    assert "matched to images by image_id" not in capsys.readouterr().err
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / f"{yolo.images[0].file_name.rsplit('.', 1)[0]}.txt").write_text("0 0.5 0.5 0.2 0.2 0.9\n")
    assert main(["det-eval", str(tmp_path / "yolo"), str(tmp_path / "pred")]) == 0
    assert "matched to images by image_id" not in capsys.readouterr().err
    # a VOC folder that cvpipe wrote from COCO keeps the ids in <image_id>: no warning there either
    assert main(["convert", str(gt_json), str(tmp_path / "voc_ids"), "--to", "voc"]) == 0
    assert not read_dataset(tmp_path / "voc_ids").numbered_ids and read_dataset(voc).numbered_ids
    capsys.readouterr()
    assert main(["det-eval", str(tmp_path / "voc_ids"), str(tmp_path / "c.json")]) == 0
    assert "matched to images by image_id" not in capsys.readouterr().err
