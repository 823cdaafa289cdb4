"""Readers, writers and conversions: conventions, lossless round trips, safety, bad files."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from detection_synth import assert_same_content, canonical, draw_voc_dataset, voc_xml
from PIL import Image

from cvpipe.detection import DetectionDataset, convert, read_dataset, read_image_size, write_dataset
from cvpipe.detection.annotations import (
    Category,
    ImageInfo,
    convert_boxes,
    format_number,
    round_decimals,
    safe_relpath,
)
from cvpipe.errors import DataError

FORMATS = ("coco", "voc", "yolo", "txt")
TAGS = ("name", "difficult", "xmin", "ymin", "xmax", "ymax")


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    return root, draw_voc_dataset(root, n_images=8, seed=1)


def test_voc_reader_follows_the_one_based_inclusive_convention(voc):
    root, truth = voc
    ds = read_dataset(root)
    assert ds.format == "voc" and not ds.issues
    assert ds.class_names == sorted({o[0] for t in truth for o in t["objects"]})
    assert [c.id for c in ds.categories] == [1, 2, 3]
    expected = [(t["split"], t["file"], name, (x0 - 1.0, y0 - 1.0, float(x1), float(y1)), bool(d))
                for t in truth for name, x0, y0, x1, y1, d in t["objects"]]
    got = [row for row in canonical(ds) if row[2]]
    assert got == sorted(expected)
    # the box of a 1x1-pixel object at pixel (0, 0) is [0, 0, 1, 1]: width = xmax - xmin + 1
    sizes = {(t["file"]): (t["width"], t["height"]) for t in truth}
    assert all((im.width, im.height) == sizes[im.file_name] for im in ds.images)


@pytest.mark.parametrize("dst", FORMATS)
@pytest.mark.parametrize("src", FORMATS)
def test_every_conversion_pair_keeps_boxes_flags_classes_and_splits(voc, tmp_path, src, dst):
    root, _ = voc
    reference = read_dataset(root)
    source = tmp_path / "src"
    convert(root, source, "voc", src)
    report = convert(source, tmp_path / "dst", src, dst)
    assert not report.issues, [str(i) for i in report.issues]
    out = read_dataset(tmp_path / "dst", dst)
    assert out.class_names == reference.class_names
    assert [c.id for c in out.categories] == [c.id for c in reference.categories]
    assert_same_content(reference, out)
    # every image file arrived and is the same picture
    for im in out.images:
        assert im.path.is_file() and read_image_size(im.path) == (im.width, im.height)


def test_voc_coco_yolo_voc_round_trip_is_exact(voc, tmp_path):
    root, _ = voc
    convert(root, tmp_path / "coco", "voc", "coco")
    convert(tmp_path / "coco", tmp_path / "yolo", "coco", "yolo")
    convert(tmp_path / "yolo", tmp_path / "voc", "yolo", "voc")
    assert canonical(read_dataset(tmp_path / "voc")) == canonical(read_dataset(root))  # exact floats
    # and the XML text holds the same integers as the original files (YOLO keeps ignored
    # objects in a sidecar, so the order inside a file may change, not the content)
    def objects(text: str) -> list[tuple]:
        return sorted(tuple(re.search(f"<{t}>([^<]*)</{t}>", obj).group(1) for t in TAGS) for obj in text.split("<object>")[1:])

    for xml in sorted((root / "Annotations").glob("*.xml")):
        assert objects((tmp_path / "voc" / "Annotations" / xml.name).read_text()) == objects(xml.read_text())


def coco_fixture(tmp_path: Path) -> Path:
    """A COCO file with non-contiguous ids, float boxes, crowd, extra fields, no images on disk."""
    data = {
        "info": {"description": "hand-made", "year": 2024},
        "licenses": [{"id": 3, "name": "CC-BY"}],
        "images": [
            {"id": 42, "file_name": "a.jpg", "width": 640, "height": 480, "license": 3, "coco_url": "http://x/a.jpg"},
            {"id": 7, "file_name": "sub/b.jpg", "width": 320, "height": 240},
        ],
        "annotations": [
            {"id": 11, "image_id": 42, "category_id": 18, "bbox": [12.34, 56.78, 100.1, 50.25], "area": 4000.5,
             "iscrowd": 0, "segmentation": [[12.34, 56.78, 112.44, 56.78, 112.44, 107.03]]},
            {"id": 12, "image_id": 42, "category_id": 90, "bbox": [0.1, 0.2, 0.3, 0.7], "area": 0.21, "iscrowd": 1,
             "segmentation": {"counts": "abc", "size": [480, 640]}},
            {"id": 13, "image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"},
                       {"id": 18, "name": "dog", "supercategory": "animal"},
                       {"id": 90, "name": "toothbrush", "supercategory": "indoor"}],
    }
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_reader_keeps_ids_crowd_and_area_and_rewrites_losslessly(tmp_path):
    path = coco_fixture(tmp_path)
    ds = read_dataset(path)
    assert [c.id for c in ds.categories] == [1, 18, 90] and ds.splits == ["val2017"]
    assert ds.ignore.tolist() == [False, True, False]
    assert ds.area.tolist() == [4000.5, 0.21, 12.0]  # the stored area, not the box area
    assert np.allclose(ds.boxes[0], [12.34, 56.78, 112.44, 107.03])
    write_dataset(ds, tmp_path / "out", "coco", images="none")
    before = json.loads(path.read_text())
    after = json.loads((tmp_path / "out/annotations/instances_val2017.json").read_text())
    assert after == before  # every field and every number, bit for bit


def test_coco_ids_and_crowd_survive_yolo_and_txt(tmp_path):
    ds = read_dataset(coco_fixture(tmp_path))
    for image in ds.images:  # the text formats need the image files; make them
        image.path = tmp_path / "img" / image.file_name
        image.path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (image.width, image.height)).save(image.path)
    for fmt in ("yolo", "txt", "voc"):
        write_dataset(ds, tmp_path / fmt, fmt)
        back = read_dataset(tmp_path / fmt, fmt)
        assert back.categories == [Category(c.id, c.name) for c in ds.categories]
        assert_same_content(back, ds)
    data = yaml.safe_load((tmp_path / "yolo/data.yaml").read_text())
    assert data["names"] == {0: "person", 1: "dog", 2: "toothbrush"} and data["category_ids"] == [1, 18, 90]
    # the crowd box is not a training positive: it lives in the sidecar, not in labels/
    assert (tmp_path / "yolo/labels_ignore/val2017/a.txt").read_text().startswith("2 ")
    assert all(not line.startswith("2 ") for line in (tmp_path / "yolo/labels/val2017/a.txt").read_text().splitlines())


def test_yolo_normalisation_matches_the_notes_worked_example(tmp_path):
    # notes: image 500x375, horse box (69, 172, 270, 330) -> 0.339 0.66933 0.402 0.42133
    path = tmp_path / "img" / "horse.jpg"
    path.parent.mkdir()
    Image.new("RGB", (500, 375)).save(path)
    ds = DetectionDataset([ImageInfo("horse.jpg", 500, 375, 1, "", path)], [Category(14, "horse")],
                          [0], [[69, 172, 270, 330]], [14])
    write_dataset(ds, tmp_path / "yolo", "yolo")
    values = [float(v) for v in (tmp_path / "yolo/labels/horse.txt").read_text().split()]
    assert values[0] == 0 and np.allclose(values[1:], [0.339, 251 / 375, 0.402, 158 / 375], atol=1e-12)
    assert round(values[2], 5) == 0.66933 and round(values[4], 5) == 0.42133


def test_image_size_comes_from_the_header_and_follows_exif(tmp_path, monkeypatch):
    from PIL import ImageFile

    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (64, 32)).save(path, exif=exif.tobytes())

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert read_image_size(path) == (32, 64)  # displayed (upright) size
    assert read_image_size(path, exif=False) == (64, 32)  # stored size


def test_yolo_boxes_of_an_exif_rotated_photo_refer_to_the_upright_picture(tmp_path):
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (200, 100)).save(root / "images/p.jpg", exif=exif.tobytes())
    (root / "labels/p.txt").write_text("0 0.5 0.5 0.5 0.25\n")
    (root / "classes.txt").write_text("cat\n")
    ds = read_dataset(root, "yolo")
    assert (ds.images[0].width, ds.images[0].height) == (100, 200)
    assert ds.boxes.tolist() == [[25.0, 75.0, 75.0, 125.0]]


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.jpg", "a/../../b.jpg", "C:\\x.jpg", "\\\\host\\x.jpg"])
def test_file_names_that_escape_the_dataset_are_refused(name):
    with pytest.raises(DataError, match="absolute|'..'"):
        safe_relpath(name)


def test_one_bad_file_is_one_line_and_the_rest_converts(voc, tmp_path):
    root, truth = voc
    src = tmp_path / "voc"
    convert(root, src, "voc", "voc")
    ann = src / "Annotations"
    (ann / "000001.xml").write_text("<annotation><filename>x.jpg</filename><object>")  # truncated
    (ann / "000003.xml").write_text(voc_xml("../../secret.jpg", 10, 10, []))
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            "<annotation><filename>&lol2;</filename></annotation>")
    (ann / "000005.xml").write_text(bomb)
    xxe = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           "<annotation><filename>&x;</filename></annotation>")
    (ann / "000007.xml").write_text(xxe)
    report = convert(src, tmp_path / "coco", "voc", "coco")
    bad = {i.file for i in report.errors}
    assert bad == {f"Annotations/00000{k}.xml" for k in (1, 3, 5, 7)}
    assert len(report.errors) == 4 and report.files_with_errors == 4
    assert "4 problems in 4 files" in report.summary()
    assert any("contains '..'" in i.message for i in report.errors)
    assert report.images == 4
    out = read_dataset(tmp_path / "coco")
    assert sorted(im.file_name for im in out.images) == [truth[k]["file"] for k in (0, 2, 4, 6)]


def test_bad_lines_and_objects_are_skipped_with_their_line(tmp_path):
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.new("RGB", (100, 50)).save(root / "images/a.png")
    (root / "labels/a.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.5 0.5\n7 0.5 0.5 0.1 0.1\nx 1 2 3 4\n1 0.1 0.1 0.1 0.1\n")
    (root / "labels/orphan.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("names: [a, b]\n")
    ds = read_dataset(root)
    assert ds.num_objects == 2 and ds.object_index.tolist() == [1, 5]
    messages = sorted(str(i) for i in ds.issues)
    assert any("labels/a.txt: line 2: expected 5 values" in m for m in messages)
    assert any("line 3: class index 7 is outside the class list" in m for m in messages)
    assert any("line 4: not numbers" in m for m in messages)
    assert any(m.startswith("labels/orphan.txt: label file without image") for m in messages)


def test_min_size_class_filters_category_map_and_splits(voc, tmp_path):
    root, truth = voc
    report = convert(root, tmp_path / "a", "voc", "coco", min_size=10, include=["circle", "square"],
                     category_map={"circle": 5, "square": 9}, val_fraction=0.25, seed=3)
    ds = read_dataset(tmp_path / "a")
    objects = [(o, t) for t in truth for o in t["objects"] if o[0] in ("circle", "square")]
    assert ds.num_objects == report.objects == len(objects)
    small = sum(1 for o, _ in objects if o[5] or (o[3] - o[1] + 1) < 10 or (o[4] - o[2] + 1) < 10)
    assert int(ds.ignore.sum()) == small
    assert [(c.id, c.name) for c in ds.categories] == [(5, "circle"), (9, "square")]
    assert sorted(im.split for im in ds.images) == ["train"] * 6 + ["val"] * 2
    with pytest.raises(DataError, match="not empty"):
        convert(root, tmp_path / "a", "voc", "coco")
    with pytest.raises(DataError, match="'dragon' is not in the dataset"):
        convert(root, tmp_path / "b", "voc", "coco", include=["dragon"])


def test_format_number_round_trips_decimal_values():
    for text in ("56.78", "0.1", "100.1", "12", "0.66933", "1e-05"):
        x = float(text)
        assert float(format_number(x + 1e-14 - 1e-14)) == x
    assert format_number(12.0) == "12" and format_number((12.34 + 100.1) - 12.34) == "100.1"


def test_round_decimals_is_pythons_round_bit_for_bit():
    rng = np.random.default_rng(0)
    k = rng.integers(0, 2**52, 20_000).astype(np.float64)
    ties = (k + 0.5) / 1e10  # about halfway between two 10-decimal values, at every magnitude below 2**52 / 1e10
    values = np.concatenate([
        ties, np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf), -ties,
        rng.uniform(-1e3, 1e3, 20_000), rng.uniform(4e5, 6e5, 20_000),  # around 2**52 / 1e10 and 2**19
        np.exp(rng.uniform(-700, 700, 20_000)), [0.0, -0.0, 5e-324, 2.5e-10, 1.5, 2**53, -2**60, 1e308],
        (np.round(rng.uniform(0, 900, 20_000), 2) + 0.3) - 0.3,  # x + w - x leaves a residue in the last bits
    ])
    expected = np.array([round(v, 10) for v in values.tolist()])
    assert np.array_equal(round_decimals(values).view(np.int64), expected.view(np.int64))
    with pytest.raises(DataError, match="non-finite coordinate inf"):
        round_decimals([1.0, np.inf])


def test_coco_numbers_are_written_as_format_number_writes_them_and_read_back_exactly(tmp_path):
    rng = np.random.default_rng(1)
    n = 5000
    decimals = rng.integers(0, 6, (n, 4))
    xywh = np.round(rng.uniform(0, 900, (n, 4)) * 10.0**decimals) / 10.0**decimals  # as COCO files hold them
    xywh[::7] = rng.uniform(0, 900, (n, 4))[::7]  # and full doubles, some of them near a rounding midpoint
    xywh[:, 2:] = np.maximum(xywh[:, 2:], 0.01)
    boxes = np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]]  # as the reader stores them: x + w
    area = xywh[:, 2] * xywh[:, 3] * np.where(rng.random(n) < 0.3, rng.uniform(0.5, 1.0, n), 1.0)
    ds = DetectionDataset([ImageInfo("a.jpg", 4000, 3000, 1)], [Category(1, "thing")], np.zeros(n, np.int64), boxes,
                          np.ones(n), area=area, annotation_id=np.arange(1, n + 1))
    write_dataset(ds, tmp_path / "out", "coco", images="none")
    text = (tmp_path / "out/annotations/instances.json").read_text()

    def as_written(v: float):
        t = format_number(v)
        return int(t) if t.lstrip("-").isdigit() else float(t)

    written = json.loads(text)["annotations"]
    written_xywh = convert_boxes(boxes, "xyxy", "xywh")
    assert (round_decimals(written_xywh) != written_xywh).sum() > 100  # the rounding has residues to remove
    expected_boxes = [[as_written(v) for v in row] for row in written_xywh]
    # the same JSON text as a format_number call per value (json.dumps tells 12 from 12.0)
    assert json.dumps([a["bbox"] for a in written]) == json.dumps(expected_boxes)
    assert json.dumps([a["area"] for a in written]) == json.dumps([as_written(v) for v in area])
    # and they read back exactly: a second trip writes the same text
    write_dataset(read_dataset(tmp_path / "out/annotations/instances.json"), tmp_path / "again", "coco", images="none")
    assert (tmp_path / "again/annotations/instances.json").read_text() == text


def test_notes_txt_format_reads_pixel_centres(tmp_path):
    root = tmp_path / "txt"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    Image.new("RGB", (800, 600)).save(root / "JPEGImages/0001.jpg")
    (root / "Annotations/0001.txt").write_text("0 647.0 71.0 21.0 47.0\n0 140.0 384.0 30.0 49.0\n")
    (root / "filelist.txt").write_text("JPEGImages/0001.jpg\n")
    ds = read_dataset(root)
    assert ds.format == "txt" and ds.class_names == ["0"]
    assert ds.boxes.tolist() == [[636.5, 47.5, 657.5, 94.5], [125.0, 359.5, 155.0, 408.5]]
    (root / "filelist.txt").write_text("/abs/JPEGImages/0001.jpg\n")
    assert "absolute" in str(read_dataset(root).issues[0])


def test_images_can_be_hard_linked_or_left_out(voc, tmp_path):
    root, truth = voc
    convert(root, tmp_path / "linked", "voc", "coco", images="hardlink")
    source = root / "JPEGImages" / truth[0]["file"]
    linked = tmp_path / "linked/images/train" / truth[0]["file"]
    assert linked.stat().st_ino == source.stat().st_ino
    report = convert(root, tmp_path / "bare", "voc", "yolo", images="none")
    assert [(i.level, str(i)) for i in report.issues] == [("warning", (
        "data.yaml: written without images (--images none), but YOLO labels are fractions of the image size: "
        "data.yaml points at images/, which is absent, so training and cvpipe can use the dataset only once the "
        "images are put there as images/<split>/<file name> (or convert again with --images copy or hardlink)"))]
    assert not report.errors and not (tmp_path / "bare/images").exists()
    assert len(list((tmp_path / "bare/labels").rglob("*.txt"))) == len(truth)
    # done as the warning says, the dataset reads back whole
    for t in truth:
        target = tmp_path / "bare/images" / t["split"] / t["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((root / "JPEGImages" / t["file"]).read_bytes())
    back = read_dataset(tmp_path / "bare")
    assert not back.issues
    assert_same_content(back, read_dataset(root))
    # new labels for those images (--overwrite --images none) keep the images, and say nothing
    images_before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "bare/images").rglob("*.*"))
    again = convert(root, tmp_path / "bare", "voc", "yolo", images="none", overwrite=True, include=[back.categories[0].name])
    assert not again.issues
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "bare/images").rglob("*.*")) == images_before
    relabelled = read_dataset(tmp_path / "bare")
    assert not relabelled.issues and 0 < relabelled.num_objects < back.num_objects  # the new labels are in place
    # annotations that hold pixel boxes need no images to be read: no warning
    for fmt in ("coco", "voc", "txt"):
        assert not convert(root, tmp_path / f"bare_{fmt}", "voc", fmt, images="none").issues


def test_malformed_coco_entries_are_issues_not_tracebacks(tmp_path):
    data = json.loads(coco_fixture(tmp_path).read_text())
    data["info"], data["licenses"] = "a string", {"not": "a list"}
    data["images"].append({"id": 8, "file_name": "c.jpg", "width": "abc", "height": 10})
    data["annotations"] += [
        {"id": 20, "image_id": [42], "category_id": 1, "bbox": [1, 2, 3, 4]},  # unhashable id
        {"id": 21, "image_id": 42, "category_id": {"id": 1}, "bbox": [1, 2, 3, 4]},
        {"id": 22, "image_id": 42, "category_id": 1, "bbox": [1e308, 0, 1e308, 1]},  # x + w overflows
        {"id": 2**70, "image_id": 42, "category_id": 1, "bbox": [1, 2, 3, 4]},  # ids are kept as int64
    ]
    data["images"].append({"id": -(2**64), "file_name": "d.jpg", "width": 10, "height": 10})
    data["categories"].append({"id": 2**63, "name": "huge"})
    path = tmp_path / "bad.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(data).encode())  # with the BOM Windows editors write
    ds = read_dataset(path)
    assert ds.num_objects == 3 and len(ds.images) == 2 and ds.info == {} and ds.licenses == []
    messages = [str(i) for i in ds.issues]
    assert any("'info' is str, not an object" in m for m in messages)
    assert any("images[2]: width 'abc' is not a number" in m for m in messages)
    assert any("annotations[3]: image_id [42] is not in 'images'" in m for m in messages)
    assert any("annotations[4]: category_id {'id': 1} is not in 'categories'" in m for m in messages)
    assert any("annotations[5]: bbox" in m and "overflows" in m for m in messages)
    assert any(f"annotations[6]: id {2**70} does not fit in 64 bits; skipped" in m for m in messages)
    assert any(f"images[3]: id {-(2**64)} does not fit in 64 bits; skipped with its annotations" in m for m in messages)
    assert any("categories[3] needs an integer 'id' and a 'name'; skipped" in m for m in messages)
    write_dataset(ds, tmp_path / "out", "voc", images="none")  # everything kept is writable


def test_coco_ids_must_be_json_integers_not_strings_floats_or_booleans(tmp_path):
    # Python's int() would take "5", 5.7 and true, and true == 1 would match category/image 1
    data = json.loads(coco_fixture(tmp_path).read_text())
    data["categories"] += [{"id": "5", "name": "cat"}, {"id": 6.7, "name": "cow"}, {"id": True, "name": "bird"}]
    data["annotations"] += [
        {"id": 30, "image_id": 42, "category_id": True, "bbox": [1, 2, 3, 4]},
        {"id": 31, "image_id": True, "category_id": 1, "bbox": [1, 2, 3, 4]},
        {"id": 32, "image_id": 42, "category_id": "18", "bbox": [1, 2, 3, 4]},
    ]
    path = tmp_path / "ids.json"
    path.write_text(json.dumps(data))
    ds = read_dataset(path)
    assert [c.id for c in ds.categories] == [1, 18, 90] and ds.num_objects == 3
    messages = [str(i) for i in ds.issues]
    assert [f"categories[{i}] needs an integer 'id'" in m for i, m in zip((3, 4, 5), messages[:3])] == [True] * 3
    assert "annotations[3]: category_id True is not in 'categories'" in messages[3]
    assert "annotations[4]: image_id True is not in 'images'" in messages[4]
    assert "annotations[5]: category_id '18' is not in 'categories'" in messages[5]


def test_voc_files_in_multi_byte_encodings_are_decoded(tmp_path):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    Image.new("RGB", (20, 20)).save(root / "JPEGImages/a.jpg")
    text = voc_xml("a.jpg", 20, 20, [("猫", 1, 1, 10, 10, 0)])
    (root / "Annotations/a.xml").write_bytes(('<?xml version="1.0" encoding="GBK"?>\n' + text).encode("gbk"))
    (root / "Annotations/b.xml").write_bytes(b'<?xml version="1.0" encoding="no-such-codec"?><annotation/>')
    ds = read_dataset(root, "voc")
    assert ds.class_names == ["猫"] and ds.boxes.tolist() == [[0, 0, 10, 10]]
    assert [(i.file, "unknown encoding" in i.message) for i in ds.issues] == [("Annotations/b.xml", True)]


def test_yolo_polygons_read_as_their_box_and_class_list_mismatch_is_reported(tmp_path):
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.new("RGB", (100, 50)).save(root / "images/a.png")
    (root / "labels/a.txt").write_text("\ufeff1 0.1 0.2 0.5 0.2 0.3 0.6 0.2 0.4\n0 0.5 0.5 0.2 0.2 0.9\n0 1e308 0.5 0.1 0.1\n")
    (root / "data.yaml").write_text("names: [a, b]\nnc: 3\n")
    (root / "classes.txt").write_text("a\nb\nc\n")
    ds = read_dataset(root)
    assert ds.category_id.tolist() == [2] and np.allclose(ds.boxes, [[10, 10, 50, 30]])
    messages = [str(i) for i in ds.issues]
    assert any("line 2: expected 5 values" in m for m in messages)
    assert any("line 3: coordinates too large" in m for m in messages)
    assert any("classes.txt: lists 3 classes that differ" in m for m in messages)
    assert any("nc is 3 but 'names' lists 2" in m for m in messages)
    (root / "data.yaml").write_text("path: [1]\nnames: [a]\n")
    with pytest.raises(DataError, match="'path' must be a path"):
        read_dataset(root)


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_overwrite_replaces_an_earlier_conversion_and_a_failed_run_changes_nothing(voc, tmp_path):
    root, truth = voc
    dst = tmp_path / "yolo"
    convert(root, dst, "voc", "yolo", val_fraction=0.5, seed=1, images="none")
    (dst / "notes.md").write_text("mine")
    convert(root, dst, "voc", "yolo", include=["circle"], images="none", overwrite=True)
    # no label file of the earlier split or class list is left to be read back
    expected = {f"labels/{t['split']}/{Path(t['file']).stem}.txt" for t in truth}
    assert {p.relative_to(dst).as_posix() for p in (dst / "labels").rglob("*.txt")} == expected
    assert not (dst / "labels_ignore").exists() and (dst / "notes.md").read_text() == "mine"
    before = _snapshot(dst)
    # the second split has two images with one file name: the writer stops after writing the first
    coco = tmp_path / "coco" / "annotations"
    coco.mkdir(parents=True)
    good = {"images": [{"id": 1, "file_name": "a.jpg", "width": 9, "height": 9}], "annotations": [],
            "categories": [{"id": 1, "name": "circle"}]}
    clash = dict(good, images=good["images"] + [{"id": 2, "file_name": "a.jpg", "width": 9, "height": 9}])
    (coco / "instances_a.json").write_text(json.dumps(good))
    (coco / "instances_b.json").write_text(json.dumps(clash))
    for target in (dst, tmp_path / "new"):
        with pytest.raises(DataError, match="used by several images"):
            convert(tmp_path / "coco", target, "coco", "coco", images="none", overwrite=True)
    assert _snapshot(dst) == before and not (tmp_path / "new").exists()
    with pytest.raises(DataError, match="not a folder"):
        convert(root, dst / "notes.md", "voc", "coco")


@pytest.mark.parametrize("setting, message", [
    ({"dst_format": "xml"}, "unknown dataset format 'xml'"),
    ({"images": "symlink"}, "unknown image mode 'symlink'"),
    ({"min_size": float("nan")}, "min size nan must be"),
    ({"val_fraction": 1.5}, "val fraction 1.5 must be in"),
    ({"category_map": {"circle": "x"}}, "ids must be integers"),
])
def test_bad_conversion_settings_are_one_line_and_write_nothing(voc, tmp_path, setting, message):
    root, _ = voc
    with pytest.raises(DataError, match=message):
        convert(root, tmp_path / "out", "voc", **{"dst_format": "coco", **setting})
    assert not (tmp_path / "out").exists()


def test_voc_filename_that_does_not_exist_falls_back_to_the_image_named_like_the_xml(tmp_path):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    Image.new("RGB", (20, 20)).save(root / "JPEGImages/a.JPG")
    Image.new("RGB", (20, 20)).save(root / "JPEGImages/b.jpg")
    (root / "Annotations/a.xml").write_text(voc_xml("IMG_0001.jpg", 20, 20, [("cat", 1, 1, 5, 5, 0)]))  # renamed
    (root / "Annotations/b.xml").write_text(voc_xml("b", 20, 20, [("cat", 1, 1, 5, 5, 0)]))  # no extension
    ds = read_dataset(root, "voc")
    assert [im.file_name for im in ds.images] == ["a.JPG", "b.jpg"] and ds.num_objects == 2
    assert [(i.file, i.level) for i in ds.issues] == [("Annotations/a.xml", "warning"), ("Annotations/b.xml", "warning")]
    assert "<filename> IMG_0001.jpg is not in JPEGImages/; using a.JPG" in ds.issues[0].message


def test_yolo_writer_leaves_out_an_image_whose_size_is_unknown_rather_than_a_background_image(tmp_path):
    root = tmp_path / "txt"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    Image.new("RGB", (40, 20)).save(root / "JPEGImages/good.jpg")
    (root / "JPEGImages/broken.jpg").write_bytes(b"not a jpeg")
    for stem in ("good", "broken"):
        (root / f"Annotations/{stem}.txt").write_text("0 10 10 4 4\n")
    report = convert(root, tmp_path / "yolo", "txt", "yolo")
    assert any("image broken.jpg: size unknown" in i.message for i in report.errors)
    assert sorted(p.name for p in (tmp_path / "yolo/images").iterdir()) == ["good.jpg"]
    out = read_dataset(tmp_path / "yolo")
    assert [im.file_name for im in out.images] == ["good.jpg"] and out.num_objects == 1 and not out.issues


def test_class_names_that_look_like_ids_or_comments_survive_the_class_file(tmp_path):
    from cvpipe.detection.formats.classes import read_class_file, write_class_file

    for cats in ([Category(1, "2 wheeler"), Category(2, "car")], [Category(1, "#1 seed"), Category(2, "b")],
                 [Category(5, "traffic light"), Category(9, "7 up")], [Category(1, "a"), Category(2, "b c")]):
        write_class_file(tmp_path / "classes.txt", cats)
        assert read_class_file(tmp_path / "classes.txt") == cats
    assert (tmp_path / "classes.txt").read_text() == "a\nb c\n"  # plain names stay plain
    (tmp_path / "classes.txt").write_text("car\n2 wheeler\n")  # written by hand
    assert read_class_file(tmp_path / "classes.txt") == [Category(1, "car"), Category(2, "2 wheeler")]
    (tmp_path / "classes.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="cannot be read as a UTF-8 class list"):
        read_class_file(tmp_path / "classes.txt")


def test_list_files_that_are_not_utf8_are_one_line(voc, tmp_path):
    root, _ = voc
    src = tmp_path / "voc"
    convert(root, src, "voc", "voc", images="none")
    (src / "ImageSets/Main/train.txt").write_bytes("000000\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"train\.txt: cannot be read as a UTF-8 split list"):
        read_dataset(src, "voc")
    convert(root, tmp_path / "yolo", "voc", "yolo", images="none")
    (tmp_path / "yolo/data.yaml").write_bytes("names: [caf\xe9]\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"data\.yaml: cannot be read as a UTF-8 data YAML"):
        read_dataset(tmp_path / "yolo", "yolo")


def test_roboflow_style_yolo_export_with_dotdot_split_paths(tmp_path):
    root = tmp_path / "rf"
    for split in ("train", "valid"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir()
        Image.new("RGB", (40, 20)).save(root / split / "images" / f"{split}.jpg")
        (root / split / "labels" / f"{split}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / "train/labels/orphan.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\ntest: ../test/images\n"
                                    "nc: 1\nnames: ['plate']\n")
    ds = read_dataset(root)
    assert [(im.split, im.file_name) for im in ds.images] == [("train", "train.jpg"), ("val", "valid.jpg")]
    assert ds.boxes.tolist() == [[10, 5, 30, 15]] * 2
    assert sorted((i.level, i.file) for i in ds.issues) == [
        ("error", "train/labels/orphan.txt"), ("warning", str(root / "test/images"))]


def test_roboflow_coco_export_reads_per_split_and_yolo_output_uses_ultralytics_keys(tmp_path):
    data = json.loads(coco_fixture(tmp_path).read_text())
    for split in ("train", "valid", "extra"):
        (tmp_path / "rf" / split).mkdir(parents=True)
        images = [dict(im, file_name=f"{split}_{im['id']}.jpg") for im in data["images"]]
        for im in images:
            Image.new("RGB", (im["width"], im["height"])).save(tmp_path / "rf" / split / im["file_name"])
        (tmp_path / "rf" / split / "_annotations.coco.json").write_text(json.dumps(dict(data, images=images)))
    ds = read_dataset(tmp_path / "rf")
    assert ds.format == "coco" and ds.splits == ["extra", "train", "valid"] and not ds.issues
    report = convert(tmp_path / "rf", tmp_path / "yolo", "coco", "yolo")
    assert [i.message.split(";")[0] for i in report.issues] == ["split 'extra' is not train, val or test"]
    cfg = yaml.safe_load((tmp_path / "yolo/data.yaml").read_text())
    assert (cfg["train"], cfg["val"], cfg["extra"]) == ("images/train", "images/valid", "images/extra")
    assert cfg["split_names"] == {"images/valid": "valid", "images/extra": "extra"}  # for cvpipe to read back
    back = read_dataset(tmp_path / "yolo")
    assert sorted({im.split for im in back.images}) == ["train", "valid"] and back.num_objects == 2 * 3


def test_voc_split_names_may_contain_underscores_and_per_class_lists_are_not_splits(tmp_path):
    truth = draw_voc_dataset(tmp_path, n_images=4, seed=3)
    main = tmp_path / "ImageSets" / "Main"
    (main / "train.txt").rename(main / "train_small.txt")
    stems = [Path(t["file"]).stem for t in truth]
    # VOC's per-class list: every image, 1 / -1 for whether the class is in it
    (main / "circle_train.txt").write_text("".join(f"{s} {1 if i % 2 else -1}\n" for i, s in enumerate(stems)))
    ds = read_dataset(tmp_path, "voc")
    assert sorted(ds.splits) == ["train_small", "val"]
    assert {im.file_name: im.split for im in ds.images} == {
        t["file"]: ("train_small" if t["split"] == "train" else "val") for t in truth}

def test_yolo_split_paths_that_leave_the_dataset_folder_are_refused(tmp_path):
    outside = tmp_path / "outside"
    (outside / "images").mkdir(parents=True)
    (outside / "labels").mkdir()
    Image.new("RGB", (40, 20)).save(outside / "images/secret.jpg")
    (outside / "labels/secret.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    root = tmp_path / "ds"
    (root / "images/train").mkdir(parents=True)
    (root / "labels/train").mkdir(parents=True)
    Image.new("RGB", (40, 20)).save(root / "images/train/a.jpg")
    (root / "labels/train/a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    for value in ("../../outside/images", "../../../etc", "images/../../outside/images", str(outside / "images")):
        (root / "data.yaml").write_text(f"train: images/train\nval: {value}\nnames: [a]\n")
        with pytest.raises(DataError, match="val path .* leads outside the dataset folder"):
            read_dataset(root)
        with pytest.raises(DataError, match="leads outside"):
            convert(root, tmp_path / "out", "yolo", "coco")
        assert not (tmp_path / "out").exists()
    # Roboflow's `../valid/images` beside the YAML means ./valid/images, never the folder above
    (root / "data.yaml").write_text("train: images/train\nval: ../outside/images\nnames: [a]\n")
    ds = read_dataset(root)
    assert [im.file_name for im in ds.images] == ["a.jpg"]
    assert [i.file for i in ds.issues] == [str(root / "outside/images")]
    # an absolute path inside the dataset folder is fine
    (root / "data.yaml").write_text(f"train: {root / 'images/train'}\nnames: [a]\n")
    ds = read_dataset(root)
    assert [im.file_name for im in ds.images] == ["a.jpg"] and not ds.issues


def test_yolo_writer_refuses_an_image_whose_file_has_another_size_than_its_annotation(tmp_path):
    data = json.loads(coco_fixture(tmp_path).read_text())
    for im in data["images"]:  # a.jpg is stated 640x480 but the file is half that; sub/b.jpg is right
        path = tmp_path / "img" / im["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (320, 240)).save(path)
    (tmp_path / "gt.json").write_text(json.dumps(data))
    report = convert(tmp_path / "gt.json", tmp_path / "yolo", "coco", "yolo", image_root=tmp_path / "img")
    assert [(i.file, i.message.split(";")[0]) for i in report.errors] == [
        (str(tmp_path / "gt.json"), "image a.jpg: size 640x480 in the annotation but the file is 320x240")]
    assert sorted(p.relative_to(tmp_path / "yolo").as_posix() for p in (tmp_path / "yolo").rglob("*.*")) == [
        "data.yaml", "images/sub/b.jpg", "labels/sub/b.txt"]


def test_coco_image_ids_survive_a_trip_through_voc(voc, tmp_path):
    convert(coco_fixture(tmp_path), tmp_path / "voc", "coco", "voc", images="none")
    assert "<image_id>42</image_id>" in (tmp_path / "voc/Annotations/a.xml").read_text()
    assert {im.file_name: im.id for im in read_dataset(tmp_path / "voc", "voc").images} == {"a.jpg": 42, "sub/b.jpg": 7}
    convert(tmp_path / "voc", tmp_path / "coco", "voc", "coco", images="none")
    data = json.loads((tmp_path / "coco/annotations/instances_val2017.json").read_text())
    assert sorted((im["file_name"], im["id"]) for im in data["images"]) == [("a.jpg", 42), ("sub/b.jpg", 7)]
    assert min((a["image_id"], a["id"]) for a in data["annotations"]) == (7, 3)
    # a plain VOC dataset keeps cvpipe's 1..N numbering, and its rewrite gains no element
    root, _ = voc
    convert(root, tmp_path / "voc2", "voc", "voc", images="none")
    assert "image_id" not in (tmp_path / "voc2/Annotations/000000.xml").read_text()


def test_coco_voc_coco_keeps_and_loses_what_the_guide_says(tmp_path):
    path = coco_fixture(tmp_path)
    convert(path, tmp_path / "voc", "coco", "voc", images="none")
    convert(tmp_path / "voc", tmp_path / "coco", "voc", "coco", images="none")
    before = json.loads(path.read_text())
    after = json.loads((tmp_path / "coco/annotations/instances_val2017.json").read_text())
    kept = ("image_id", "category_id", "bbox", "iscrowd")
    # kept: boxes, image ids, file names, sizes, image fields, crowd flags, category ids and names, the split
    assert [[a[k] for k in kept] for a in after["annotations"]] == [[a[k] for k in kept] for a in before["annotations"]]
    assert [{k: v for k, v in im.items() if k != "depth"} for im in after["images"]] == before["images"]
    assert [(c["id"], c["name"]) for c in after["categories"]] == [(c["id"], c["name"]) for c in before["categories"]]
    # lost: annotation ids, the stored (mask) area, segmentation, supercategory, info and licenses
    assert [a["id"] for a in after["annotations"]] == [1, 2, 3]  # 11, 12, 13 before
    assert after["annotations"][0]["area"] == pytest.approx(100.1 * 50.25) != before["annotations"][0]["area"]
    assert not any("segmentation" in a for a in after["annotations"])
    assert {c["supercategory"] for c in after["categories"]} == {""}
    assert after["licenses"] == [] and after["info"] != before["info"]
    # added: VOC's own fields
    assert {"pose", "truncated"} <= set(after["annotations"][0]) and after["images"][0]["depth"] == "3"


def test_coco_messages_name_the_missing_key_and_a_skipped_image_is_reported_once(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 1, 1]}]))
    assert "is a list, not an object (a COCO results file?)" in str(read_dataset(path).issues[0])
    path.write_text(json.dumps({"images": [], "annotations": []}))
    assert "has no list 'categories'" in str(read_dataset(path).issues[0])
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 9, "height": 9},
                       {"id": 2, "file_name": "../b.jpg", "width": 9, "height": 9}],
            "categories": [{"id": 1, "name": "cat"}],
            "annotations": [{"id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]},
                            {"id": 2, "image_id": 1, "category_id": 1},
                            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]},
                            {"id": 4, "image_id": 2, "category_id": 1, "bbox": [0, 0, 2, 2]}]}
    path.write_text(json.dumps(data))
    assert [i.message for i in read_dataset(path).issues] == [
        ("images[1]: file name '../b.jpg' contains '..'; file names must stay inside the dataset folder; "
         "skipped with its annotations"),
        "annotations[0]: has no 'image_id'; skipped",
        "annotations[1]: has no 'bbox'; skipped"]
    # YOLO: an unreadable image is one issue, not also "label file without image" for its labels
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.new("RGB", (10, 10)).save(root / "images/good.jpg")
    (root / "images/broken.jpg").write_bytes(b"not a jpeg")
    for stem in ("good", "broken"):
        (root / f"labels/{stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    issues = read_dataset(root, "yolo", classes=["cat"]).issues
    assert [(i.file, i.message.endswith("image skipped with its labels")) for i in issues] == [("images/broken.jpg", True)]


def test_duplicate_coco_annotation_ids_are_one_warning_and_only_the_repeats_get_new_ids(tmp_path):
    path = coco_fixture(tmp_path)
    data = json.loads(path.read_text())
    first = data["annotations"][0]
    data["annotations"] += [dict(first, id=i, bbox=[k, k, 5, 5]) for k, i in enumerate((11, 13, 11, 12), start=1)]
    path.write_text(json.dumps(data))
    report = convert(path, tmp_path / "out", "coco", "coco", images="none")
    assert [(i.level, str(i)) for i in report.issues] == [("warning", (
        f"{path}: 3 annotation ids are used more than once (e.g. 11: annotations[0] and annotations[3]); the 4 later "
        "ones get new ids 14..17, the first of each keeps its id; fix the file for other tools (pycocotools mixes up "
        "annotations that share an id)"))]
    assert not report.errors and "problem" not in report.summary()
    written = json.loads((tmp_path / "out/annotations/instances_val2017.json").read_text())["annotations"]
    assert sorted((a["id"], a["bbox"][0]) for a in written) == [(11, 12.34), (12, 0.1), (13, 1), (14, 1), (15, 2),
                                                                (16, 3), (17, 4)]
    # pycocotools indexes annotations by id: it sees 3 of the original file's 7, all 7 of the written one
    coco = pytest.importorskip("pycocotools.coco")
    with contextlib.redirect_stdout(io.StringIO()):
        before, after = (coco.COCO(str(p)) for p in (path, tmp_path / "out/annotations/instances_val2017.json"))
    assert (len(before.anns), len(after.anns)) == (3, 7)


def test_empty_image_and_object_fields_survive_coco_voc_coco(tmp_path):
    # CVAT writes "flickr_url": "", "coco_url": "" on every image; VOC stores them as <coco_url />,
    # which must come back as "" rather than vanish
    data = {"images": [{"id": 5, "file_name": "a.jpg", "width": 40, "height": 30, "license": 0, "flickr_url": "",
                        "coco_url": "", "date_captured": 0}],
            "annotations": [{"id": 1, "image_id": 5, "category_id": 1, "bbox": [1, 2, 10, 8], "area": 80,
                             "iscrowd": 0, "note": ""}],
            "categories": [{"id": 1, "name": "car"}]}
    (tmp_path / "gt.json").write_text(json.dumps(data))
    write_dataset(read_dataset(tmp_path / "gt.json"), tmp_path / "voc", "voc", images="none")
    assert "<coco_url />" in (tmp_path / "voc/Annotations/a.xml").read_text()
    write_dataset(read_dataset(tmp_path / "voc", "voc"), tmp_path / "coco", "coco", images="none")
    after = json.loads((tmp_path / "coco/annotations/instances.json").read_text())
    image = after["images"][0]
    assert {k: image[k] for k in data["images"][0]} == data["images"][0]
    assert after["annotations"][0]["note"] == ""
