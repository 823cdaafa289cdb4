"""Lint: every kind of problem is found, named with its file and object, and nothing else is."""

from __future__ import annotations

import json
import re

import pytest
from detection_synth import draw_voc_dataset, voc_xml
from PIL import Image

from cvpipe.cli import main
from cvpipe.detection import lint


def findings(report, level="error") -> list[str]:
    return [str(f) for f in (report.errors if level == "error" else report.warnings)]


def test_a_clean_dataset_has_no_errors_and_gets_statistics_and_plots(tmp_path):
    truth = draw_voc_dataset(tmp_path / "voc", n_images=6, seed=2)
    report = lint(tmp_path / "voc", out_dir=tmp_path / "plots")
    assert report.ok, findings(report)
    assert findings(report, "warning") == ["Annotations/000002.xml: image 000002.jpg has no objects"]
    n_objects = sum(len(t["objects"]) for t in truth)
    assert report.stats["objects"] == n_objects and report.stats["images_without_objects"] == 1
    assert sum(report.stats["objects_per_class"].values()) == n_objects - report.stats["ignored"]
    assert report.stats["splits"] == {"train": 3, "val": 3}
    assert [p.name for p in report.plots] == ["objects_per_class.png", "box_sizes.png", "aspect_ratios.png",
                                              "boxes_per_image.png"]
    for p in report.plots:
        with Image.open(p) as im:
            assert im.format == "PNG"


def test_voc_problems_are_reported_with_file_and_object(tmp_path):
    root = tmp_path / "voc"
    truth = draw_voc_dataset(root, n_images=8, seed=3)
    ann = root / "Annotations"

    def rewrite(k: int, objects=None, width=None, height=None):
        t = truth[k]
        (ann / f"{k:06d}.xml").write_text(voc_xml(t["file"], width or t["width"], height or t["height"],
                                                  t["objects"] if objects is None else objects))

    W = truth[0]["width"]
    rewrite(0, [("circle", 1, 1, W + 5, 10, 0)] + truth[0]["objects"])  # object 0 leaves the image
    rewrite(1, truth[1]["objects"] + [("square", 30, 5, 20, 15, 0)])  # last object: xmin > xmax
    rewrite(3, width=999, height=999)  # size does not match the JPEG
    rewrite(4, truth[4]["objects"] + [("dragon", 2, 2, 9, 9, 0)])  # label outside the class list
    (root / "JPEGImages" / truth[5]["file"]).unlink()  # annotation without image
    rewrite(6, [("circle", 11, 5, 10, 15, 0)])  # zero width (xmin = xmax + 1)
    rewrite(7, [truth[7]["objects"][0]] * 2)  # the same box twice
    rewrite(2, [("circle", 1 + 2 * k, 1, 5 + 2 * k, 5, 0) for k in range(12)])  # circles dominate
    Image.new("RGB", (20, 20)).save(root / "JPEGImages" / "stray.jpg")  # image without annotation
    (root / "classes.txt").write_text("circle\nsquare\ntriangle\n")

    report = lint(root, imbalance=2)
    errors = findings(report)
    expected = [
        rf"Annotations/000000\.xml object 0: bndbox \[1, 1, {W + 5}, 10\] outside the {W}x\d+ image \(VOC is 1-based",
        r"Annotations/000001\.xml object \d: bndbox \[30, 5, 20, 15\]: xmin > xmax or ymin > ymax: corners in the wrong",
        r"Annotations/000003\.xml: image 000003\.jpg: size 999x999 in the annotation but the file is \d+x\d+",
        r"Annotations/000004\.xml object \d: class 'dragon' is not in the class list",
        r"Annotations/000005\.xml: image JPEGImages/000005\.jpg is missing \(annotation without image\)",
        r"Annotations/000006\.xml object 0: bndbox \[11, 5, 10, 15\]: zero width or height",
    ]
    for pattern in expected:
        assert sum(bool(re.match(pattern, e)) for e in errors) == 1, (pattern, errors)
    assert len(errors) == len(expected), errors
    warnings = findings(report, "warning")
    assert "JPEGImages/stray.jpg: image without annotation file in Annotations/" in warnings
    assert any(w.startswith("Annotations/000007.xml object 0: box is repeated exactly") for w in warnings)
    assert any("heavy class imbalance" in w for w in warnings)
    # the command line says the same and fails
    assert main(["check-detection", str(root), "--imbalance", "2", "--out", str(tmp_path / "out")]) == 1
    saved = json.loads((tmp_path / "out/report.json").read_text())
    assert sum(f["level"] == "error" for f in saved["findings"]) == len(expected)


def test_yolo_problems_name_the_line(tmp_path):
    root = tmp_path / "yolo"
    for sub in ("images/train", "labels/train"):
        (root / sub).mkdir(parents=True)
    Image.new("RGB", (100, 50)).save(root / "images/train/a.jpg")
    Image.new("RGB", (100, 50)).save(root / "images/train/b.jpg")
    (root / "labels/train/a.txt").write_text("0 0.5 0.5 0.2 0.2\n1 1.2 0.5 0.2 0.2\n0 0.5 0.5 -0.1 0.2\n5 0.5 0.5 0.1 0.1\n")
    (root / "labels/train/c.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("train: images/train\nnames: {0: cat, 1: dog}\n")
    report = lint(root)
    errors = findings(report)
    assert "labels/train/a.txt: line 2: normalised coordinates outside [0, 1] (x1 y1 x2 y2 = 1.1, 0.4, 1.3, 0.6)" in errors
    assert "labels/train/a.txt: line 3: box x1 y1 x2 y2 [55, 20, 45, 30]: negative width or height (wrong column order?)" in errors
    assert "labels/train/a.txt: line 4: class index 5 is outside the class list (0..1); skipped" in errors
    assert "labels/train/c.txt: label file without image (annotation without image)" in errors
    assert len(errors) == 4
    assert "labels/train/b.txt: image b.jpg has no objects" in findings(report, "warning")


def test_coco_problems_and_an_exif_rotated_image(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.new("RGB", (60, 40)).save(images / "rot.jpg", exif=exif.tobytes())
    Image.new("RGB", (60, 40)).save(images / "ok.jpg")
    data = {
        "images": [{"id": 1, "file_name": "rot.jpg", "width": 60, "height": 40},  # annotated unrotated
                   {"id": 2, "file_name": "ok.jpg", "width": 60, "height": 40},
                   {"id": 2, "file_name": "dup.jpg", "width": 60, "height": 40},
                   {"id": 3, "file_name": "gone.jpg", "width": 0, "height": 0}],
        "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [1, 1, 10, 10], "area": 100, "iscrowd": 0},
                        {"id": 1, "image_id": 2, "category_id": 1, "bbox": [5, 5, 10, 10], "area": 100, "iscrowd": 0},
                        {"id": 3, "image_id": 9, "category_id": 1, "bbox": [1, 1, 10, 10], "area": 100, "iscrowd": 0},
                        {"id": 4, "image_id": 1, "category_id": 4, "bbox": [1, 1, 10, 10], "area": 100, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "cat"}],
    }
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(data))
    report = lint(path, image_root=images)
    errors = findings(report)
    name = str(path)
    assert f"{name}: images[2]: duplicate image id 2; skipped" in errors
    assert [w for w in findings(report, "warning") if "annotation id" in w] == [(
        f"{name}: annotation id 1 is used more than once (annotations[0] and annotations[1]); the later one gets the "
        "new id 2, the first of each keeps its id; fix the file for other tools (pycocotools mixes up annotations "
        "that share an id)")]
    assert f"{name}: annotations[2]: image_id 9 is not in 'images' (annotation without image); skipped" in errors
    assert f"{name}: annotations[3]: category_id 4 is not in 'categories' (label outside the class list); skipped" in errors
    assert f"{name}: image gone.jpg: size missing from the annotation" in errors
    assert f"{name}: image file gone.jpg is missing (annotation without image)" in errors
    assert any("image rot.jpg: size 60x40 in the annotation but the file is 40x60 (it matches the stored pixels before "
               "the EXIF" in e for e in errors)
    assert len(errors) == 6, errors


@pytest.mark.parametrize("fmt", ["coco", "yolo", "txt"])
def test_converted_datasets_lint_clean(tmp_path, fmt):
    from cvpipe.detection import convert

    draw_voc_dataset(tmp_path / "voc", n_images=4, seed=4)
    convert(tmp_path / "voc", tmp_path / fmt, "voc", fmt)
    report = lint(tmp_path / fmt)
    assert report.ok, findings(report)
    assert main(["check-detection", str(tmp_path / fmt)]) == 0


def test_a_huge_box_is_reported_without_numpy_warnings(tmp_path):
    import warnings

    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
            "categories": [{"id": 1, "name": "cat"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1e308, 5]}]}
    (tmp_path / "gt.json").write_text(json.dumps(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning on stderr is noise around the one-line finding
        report = lint(tmp_path / "gt.json", check_files=False)
    assert [f.message for f in report.errors] == ["bbox [0, 0, 1e+308, 5] outside the 64x48 image"]


def test_a_missing_image_of_a_txt_dataset_is_one_error_not_a_size_missing_from_its_annotation(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "Annotations").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "JPEGImages/a.jpg")
    (tmp_path / "Annotations/a.txt").write_text("0 10 10 4 4\n")
    (tmp_path / "Annotations/b.txt").write_text("0 10 10 4 4\n")
    (tmp_path / "filelist.txt").write_text("JPEGImages/a.jpg\nJPEGImages/b.jpg\n")
    report = lint(tmp_path, "txt")
    assert findings(report) == ["Annotations/b.txt: image JPEGImages/b.jpg is missing (annotation without image)"]


def test_a_duplicate_category_name_is_reported_once(tmp_path):
    from cvpipe.detection import convert

    categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 7, "name": "cat"}]
    (tmp_path / "coco/annotations").mkdir(parents=True)
    for split in ("train", "val"):  # the same list in both split files: still one problem
        data = {"images": [{"id": 1, "file_name": f"{split}.jpg", "width": 64, "height": 48}], "categories": categories,
                "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 1, 10, 10]}]}
        (tmp_path / f"coco/annotations/instances_{split}.json").write_text(json.dumps(data))
    message = ("categories[2]: category 7 has the name 'cat' of category 1: VOC files (which store names) and "
               "per-class results cannot tell them apart; rename one")
    report = lint(tmp_path / "coco", check_files=False)
    assert [str(f) for f in report.findings if "'cat'" in f.message] == [
        f"{tmp_path / 'coco/annotations/instances_train.json'}: {message}"]
    assert [i.message for i in convert(tmp_path / "coco", tmp_path / "out", "coco", "coco", images="none").issues] == [
        message]
    # a format without ids of its own: the class list's duplicate is one error
    draw_voc_dataset(tmp_path / "voc", n_images=2, seed=1)
    (tmp_path / "voc/classes.txt").write_text("circle\nsquare\ncircle\n")
    findings_voc = lint(tmp_path / "voc").findings
    assert [f"{f.level}: {f.message}" for f in findings_voc if "circle' in the class" in f.message] == [
        "error: duplicate category name 'circle' in the class list"]
