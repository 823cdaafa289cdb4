"""The three layouts, class order, splitting, and files left out with their reasons."""

import csv
import math

import pytest
import torch
from data_files import write_image, write_text

from cvpipe.config import DataConfig
from cvpipe.data.datasets import ImageDataset, build_splits, multilabel_stratified_split, stratified_split
from cvpipe.data.layouts import natural_key
from cvpipe.errors import ConfigError, DataError


def names_of(dataset):
    """(file name, class name) pairs: what a target *means*, independent of indices."""
    return sorted((p.name, dataset.classes[t]) for p, t in dataset.samples)


# --------------------------------------------------------------------------- folder layout


def test_natural_class_order():
    assert sorted(["10", "2", "1", "img10", "img9", "B", "a"], key=natural_key) == ["1", "2", "10", "a", "B", "img9", "img10"]


def test_folder_layout_with_seeded_stratified_split(tmp_path):
    for cls, count in (("10", 10), ("2", 20), ("1", 5)):
        for i in range(count):
            write_image(tmp_path / cls / f"{i}.png", seed=i)
    splits = build_splits(DataConfig(root=str(tmp_path), val_split=0.2, split_seed=3), in_chans=3, check=False)
    assert splits.layout == "folder" and splits.classes == ["1", "2", "10"]
    assert torch.bincount(splits.val.targets).tolist() == [1, 4, 2]  # 20% of each class
    assert torch.bincount(splits.train.targets).tolist() == [4, 16, 8]
    assert not set(splits.train.paths) & set(splits.val.paths)
    again = build_splits(DataConfig(root=str(tmp_path), val_split=0.2, split_seed=3), in_chans=3, check=False)
    other = build_splits(DataConfig(root=str(tmp_path), val_split=0.2, split_seed=4), in_chans=3, check=False)
    assert again.val.paths == splits.val.paths and other.val.paths != splits.val.paths
    image, target = splits.train[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 5, 6)
    assert target.dtype == torch.int64 and target.ndim == 0
    grey = build_splits(DataConfig(root=str(tmp_path)), in_chans=1, check=False)
    assert grey.train[0][0].shape == (1, 5, 6)


def test_symlink_loops_and_repeated_folders_are_listed_once(tmp_path):
    for cls in ("cat", "dog"):
        for i in range(2):
            write_image(tmp_path / cls / f"{i}.png", seed=i)
    (tmp_path / "cat" / "up").symlink_to(tmp_path, target_is_directory=True)  # a loop through the root
    (tmp_path / "dog" / "again").symlink_to(tmp_path / "dog", target_is_directory=True)
    (tmp_path / "dog" / "more").mkdir()
    write_image(tmp_path / "dog" / "more" / "2.png")
    (tmp_path / "dog" / "link").symlink_to(tmp_path / "dog" / "more", target_is_directory=True)
    splits = build_splits(DataConfig(root=str(tmp_path), val_split=0.0), check=False)
    assert names_of(splits.train) == [("0.png", "cat"), ("0.png", "dog"), ("1.png", "cat"), ("1.png", "dog"), ("2.png", "dog")]


def test_stratified_split_properties():
    strata = [0] * 50 + [1] * 7 + [2] * 1
    train, val, test = stratified_split(len(strata), strata, 0.2, 0.1, seed=0)
    assert sorted(train + val + test) == list(range(len(strata)))
    per_class = [[sum(strata[i] == c for i in part) for c in range(3)] for part in (train, val, test)]
    assert per_class == [[35, 5, 1], [10, 1, 0], [5, 1, 0]]  # round(n * f); one always stays in train


def _skewed_label_sets(n: int, seed: int) -> list[list[int]]:
    """Multi-label items whose 12 labels range from common (p=0.5) to rare (p=0.01), some unlabelled."""
    g = torch.Generator().manual_seed(seed)
    p = torch.logspace(math.log10(0.5), -2, 12)
    hot = torch.rand(n, 12, generator=g) < p
    return [row.nonzero().flatten().tolist() for row in hot]


def _label_shares(label_sets, part) -> torch.Tensor:
    """(12,) fraction of each label's items that landed in ``part``."""
    counts, inside = torch.zeros(12), torch.zeros(12)
    for i, labels in enumerate(label_sets):
        counts[labels] += 1
    for i in part:
        inside[label_sets[i]] += 1
    return inside / counts


def test_multilabel_split_keeps_every_labels_share_far_closer_than_a_random_split():
    label_sets = _skewed_label_sets(1000, seed=0)
    train, val, test = multilabel_stratified_split(label_sets, 0.2, 0.1, seed=0)
    assert sorted(train + val + test) == list(range(1000)) and all(p == sorted(p) for p in (train, val, test))
    assert abs(len(val) - 200) <= 2 and abs(len(test) - 100) <= 2
    assert (train, val, test) == multilabel_stratified_split(label_sets, 0.2, 0.1, seed=0)  # seeded
    assert (train, val, test) != multilabel_stratified_split(label_sets, 0.2, 0.1, seed=1)

    order = torch.randperm(1000, generator=torch.Generator().manual_seed(0)).tolist()
    random_val, random_test = order[:200], order[200:300]
    for part, share, random_part in ((val, 0.2, random_val), (test, 0.1, random_test)):
        counts = torch.tensor([sum(c in labels for labels in label_sets) for c in range(12)], dtype=torch.float)
        ours = (_label_shares(label_sets, part) - share).abs() * counts  # items off the label's share
        chance = (_label_shares(label_sets, random_part) - share).abs() * counts
        # every label within one item of its share; a seeded random split is several items off
        assert (ours <= 1.0 + 1e-6).all(), ours
        assert ours.mean() * 3 < chance.mean(), (ours, chance)


def test_multilabel_split_edge_cases():
    # a fraction of 0 gets nothing; unlabelled items are shared out too
    sets = [[0], [0, 1], [], [], [1], [0], [], [1]]
    train, val, test = multilabel_stratified_split(sets, 0.25, 0.0, seed=3)
    assert test == [] and len(val) == 2 and sorted(train + val) == list(range(8))
    assert multilabel_stratified_split([], 0.2, 0.1, seed=0) == ([], [], [])
    assert multilabel_stratified_split([[], []], 0.5, 0.0, seed=0)[1] != []
    # labels on one image each (plus a shared one): val and test still get their share of images
    # (every such item used to go to train, which wants the most of each label: 99 / 1 / 0)
    for sets in ([[0, 1 + i] for i in range(100)], [[i] for i in range(100)]):
        train, val, test = multilabel_stratified_split(sets, 0.2, 0.1, seed=0)
        assert (len(train), len(val), len(test)) == (70, 20, 10)
    # one label on every image: a plain seeded split of the counts
    assert tuple(map(len, multilabel_stratified_split([[0]] * 50, 0.2, 0.1, seed=0))) == (35, 10, 5)


def test_split_folders_and_a_class_missing_from_val(tmp_path):
    for cls in ("cat", "dog", "emu"):
        for i in range(3):
            write_image(tmp_path / "train" / cls / f"{cls}{i}.png", seed=i)
    write_image(tmp_path / "val" / "dog" / "d.png")  # no cat, no emu in val
    write_image(tmp_path / "val" / "emu" / "e.png")
    write_image(tmp_path / "Test" / "cat" / "c.png")
    splits = build_splits(DataConfig(root=str(tmp_path)), check=False)
    assert splits.classes == ["cat", "dog", "emu"]
    assert len(splits.train) == 9  # val folder given: nothing carved from train
    assert names_of(splits.val) == [("d.png", "dog"), ("e.png", "emu")]
    assert splits.val.targets.tolist() == [1, 2]  # not shifted to [0, 1]
    assert names_of(splits.test) == [("c.png", "cat")]
    assert any("val split has no images of 1 class(es): cat" in w for w in splits.warnings)


def test_an_empty_class_folder_is_reported_not_silently_dropped(tmp_path):
    for cls in ("cat", "dog"):
        for i in range(5):
            write_image(tmp_path / cls / f"{i}.png", seed=i)
    (tmp_path / "emu" / "notes").mkdir(parents=True)  # a class folder with no image anywhere in it
    splits = build_splits(DataConfig(root=str(tmp_path)), check=False)
    assert splits.classes == ["cat", "dog"]
    assert any("emu hold no images and are not classes" in w for w in splits.warnings), splits.warnings


def test_only_val_folder_missing_carves_val_from_train(tmp_path):
    for i in range(10):
        write_image(tmp_path / "train" / "a" / f"{i}.png")
        write_image(tmp_path / "train" / "b" / f"{i}.png")
    splits = build_splits(DataConfig(root=str(tmp_path), val_split=0.3), check=False)
    assert len(splits.train) == 14 and len(splits.val) == 6 and splits.test is None


# --------------------------------------------------------------------------- label file layout


def test_label_file_space_and_comma_separated(tmp_path):
    for i in range(6):
        write_image(tmp_path / "images" / f"{i:03d}.jpg", seed=i)
    write_text(tmp_path / "labels.txt", "# name label\n000.jpg cat\n001.jpg, dog\n002.jpg cat\n\n003.jpg,dog\n004.jpg bird\n005.jpg bird\n")
    splits = build_splits(DataConfig(root=str(tmp_path), val_split=0.0), check=False)
    assert splits.layout == "labelfile" and splits.classes == ["bird", "cat", "dog"]
    assert names_of(splits.train) == [
        ("000.jpg", "cat"), ("001.jpg", "dog"), ("002.jpg", "cat"), ("003.jpg", "dog"), ("004.jpg", "bird"), ("005.jpg", "bird")
    ]
    assert splits.val is None


def test_space_separated_label_file_with_spaces_in_file_names(tmp_path):
    # the first line must not be mistaken for a header and dropped
    for name in ("IMG 01.JPG", "b.jpg", "my photo 2.png"):
        write_image(tmp_path / name)
    write_text(tmp_path / "labels.txt", "IMG 01.JPG cat\r\nb.jpg dog\r\nmy photo 2.png cat dog\r\n")
    splits = build_splits(DataConfig(root=str(tmp_path), val_split=0.0), check=False)
    assert not splits.skipped and splits.classes == ["cat", "dog"]
    rows = sorted((p.name, [splits.classes[i] for i, v in enumerate(t) if v]) for p, t in splits.train.samples)
    assert rows == [("IMG 01.JPG", ["cat"]), ("b.jpg", ["dog"]), ("my photo 2.png", ["cat", "dog"])]


def test_label_file_written_on_windows(tmp_path):
    write_image(tmp_path / "images" / "sub" / "a.png")
    write_image(tmp_path / "images" / "b.png")
    write_image(tmp_path / "outside.png")
    write_text(tmp_path / "labels.csv", "file,label\r\nsub\\a.png,cat\r\nb.png,dog\r\n..\\outside.png,dog\r\n")
    splits = build_splits(DataConfig(root=str(tmp_path), val_split=0.0), check=False)
    assert names_of(splits.train) == [("a.png", "cat"), ("b.png", "dog")]
    assert [reason.split(": ", 1)[1] for _, reason in splits.skipped] == [f"the path leaves the image folder {tmp_path / 'images'}"]


def test_label_csv_with_header_names_file_and_ids(tmp_path):
    for i in range(4):
        write_image(tmp_path / f"img{i}.png", seed=i)
    write_text(tmp_path / "classes.txt", "zebra\nant\nyak\n")  # file order, not sorted
    write_text(tmp_path / "data.csv", "filename,label\nimg0.png,2\nimg1.png,ant\nimg2.png,0\nimg3.png,yak\n")
    splits = build_splits(DataConfig(root=str(tmp_path), val_split=0.0), check=False)
    assert splits.classes == ["zebra", "ant", "yak"]
    assert names_of(splits.train) == [("img0.png", "yak"), ("img1.png", "ant"), ("img2.png", "zebra"), ("img3.png", "yak")]


def test_label_csv_with_more_columns_reads_the_label_column(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"{i}.png", seed=i)
    write_text(tmp_path / "meta.csv", "file,Label,source\n0.png,cat,flickr\n1.png,dog,web\n2.png,cat,web\n")
    splits = build_splits(DataConfig(root=str(tmp_path), val_split=0.0), check=False)
    assert not splits.multi_label and splits.classes == ["cat", "dog"]
    assert names_of(splits.train) == [("0.png", "cat"), ("1.png", "dog"), ("2.png", "cat")]


def test_label_csv_class_names_with_spaces_stay_one_class(tmp_path):
    # a spreadsheet export: BOM, Windows line endings, quoted names with spaces; "coffee cup" is
    # one class (it was read as the two labels "coffee" and "cup", making the data multi-label)
    names = ["coffee cup", "cat", "coffee cup", "cat", "cat", "coffee cup"]
    for i in range(len(names)):
        write_image(tmp_path / "images" / f"img ñ {i}.png", seed=i)
    rows = "".join(f'"img ñ {i}.png",{name}\r\n' for i, name in enumerate(names))
    (tmp_path / "labels.csv").write_text("filename,label\r\n" + rows, encoding="utf-8-sig", newline="")
    splits = build_splits(DataConfig(root=str(tmp_path), val_split=0.0), check=False)
    assert not splits.skipped and not splits.multi_label and splits.classes == ["cat", "coffee cup"]
    assert names_of(splits.train) == [(f"img ñ {i}.png", name) for i, name in enumerate(names)]
    # ';' (documented) separates several labels in a field, and class ids in one field ("0 1")
    # still split; declaring the data multi-label (as eval does for a multi-label model) reads the
    # same labels as auto-detection
    write_text(tmp_path / "labels.csv", "file,label\nimg ñ 0.png,coffee cup;cat\nimg ñ 1.png,cat\n")
    tagged = build_splits(DataConfig(root=str(tmp_path), val_split=0.0), check=False)
    assert tagged.multi_label and tagged.classes == ["cat", "coffee cup"]
    assert tagged.train.targets.tolist() == [[1, 1], [1, 0]]
    write_text(tmp_path / "labels.csv", "file,label\nimg ñ 0.png,0 1\nimg ñ 1.png,1\n")
    ids = build_splits(DataConfig(root=str(tmp_path), val_split=0.0), check=False)
    assert ids.multi_label and ids.classes == ["0", "1"] and ids.train.targets.tolist() == [[1, 1], [0, 1]]
    write_text(tmp_path / "labels.csv", "file,label\nimg ñ 0.png,coffee cup;cat\nimg ñ 1.png,cat\n")
    declared = build_splits(DataConfig(root=str(tmp_path), val_split=0.0, multi_label=True), check=False)
    assert declared.classes == tagged.classes and declared.train.targets.tolist() == tagged.train.targets.tolist()


def test_label_csv_multi_hot_header(tmp_path):
    for i in range(4):
        write_image(tmp_path / "pics" / f"{i}.png", seed=i)
    write_text(tmp_path / "tags.csv", "image,sky,tree,car\n0.png,1,0,0\n1.png,0,1,1\n2.png,0,0,0\n3.png,1,1,1\n")
    splits = build_splits(DataConfig(root=str(tmp_path), images="pics", val_split=0.0), check=False)
    assert splits.multi_label and splits.classes == ["sky", "tree", "car"]
    assert splits.train.targets.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 1]]
    image, target = splits.train[1]
    assert target.dtype == torch.float32 and target.shape == (3,)


def test_label_files_per_split_and_bad_entries(tmp_path):
    for i in range(4):
        write_image(tmp_path / f"{i}.png", seed=i)
    write_image(tmp_path.parent / "outside.png")
    write_text(tmp_path / "train.txt", "0.png a\n1.png b\n1.png a\nmissing.png a\n../outside.png b\n")
    write_text(tmp_path / "val.txt", "2.png b\n3.png c\n")
    splits = build_splits(DataConfig(root=str(tmp_path)), check=False)
    assert splits.classes == ["a", "b", "c"]  # c only in val still gets its own index
    assert names_of(splits.train) == [("0.png", "a"), ("1.png", "b")]
    assert names_of(splits.val) == [("2.png", "b"), ("3.png", "c")]
    reasons = dict(splits.skipped)
    assert "listed again (first on line 2)" in reasons[str(tmp_path / "1.png")]
    assert "no such file" in reasons[str(tmp_path / "missing.png")]
    assert "leaves the image folder" in reasons["../outside.png"]
    with pytest.raises(DataError, match="data.strict"):
        build_splits(DataConfig(root=str(tmp_path), strict=True), check=False)


# --------------------------------------------------------------------------- one .txt per image


def test_per_image_txt_multi_hot(tmp_path):
    vectors = ["1 0 1", "0 1 0", "1 1 0", "0 0 0"]
    for i, vector in enumerate(vectors):
        write_image(tmp_path / "images" / f"{i}.png", seed=i)
        write_text(tmp_path / "labels" / f"{i}.txt", vector + "\n")
    splits = build_splits(DataConfig(root=str(tmp_path), val_split=0.0), check=False)
    assert splits.layout == "pertxt" and splits.multi_label and splits.classes == ["0", "1", "2"]
    assert splits.train.targets.tolist() == [[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]]


def test_per_image_txt_lists_of_ids_with_names(tmp_path):
    lists = ["0 2", "1", "", "2"]
    for i, ids in enumerate(lists):
        write_image(tmp_path / "train" / f"{i}.jpg", seed=i)
        write_text(tmp_path / "train" / f"{i}.txt", ids)
    write_image(tmp_path / "val" / "v.jpg")
    write_text(tmp_path / "val" / "v.txt", "0 1")
    write_image(tmp_path / "train" / "orphan.jpg")  # no label file
    write_text(tmp_path / "names.txt", "person\nbike\ncar\n")
    splits = build_splits(DataConfig(root=str(tmp_path)), check=False)
    assert splits.layout == "pertxt" and splits.multi_label
    assert splits.classes == ["person", "bike", "car"]
    assert splits.train.targets.tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0], [0, 0, 1]]  # "" = no positives
    assert splits.val.targets.tolist() == [[1, 1, 0]]
    assert [(p.split("/")[-1], r.split(" ")[0]) for p, r in splits.skipped] == [("orphan.jpg", "no")]


def test_yolo_detection_labels_are_not_read_as_classes(tmp_path):
    for i in range(3):
        write_image(tmp_path / "images" / f"{i}.jpg", seed=i)
        write_text(tmp_path / "labels" / f"{i}.txt", f"{i % 2} 0.5 0.5 0.25 0.3\n1 0.1 0.2 0.05 0.05\n")
    with pytest.raises(DataError, match=r"labels/0.txt line 1: '0 0.5 0.5 0.25 0.3' is a YOLO detection label"):
        build_splits(DataConfig(root=str(tmp_path)), check=False)


def test_single_label_txt_with_several_labels_is_refused(tmp_path):
    for i, text in enumerate(["cat", "dog", "cat dog"]):
        write_image(tmp_path / f"{i}.png", seed=i)
        write_text(tmp_path / f"{i}.txt", text)
    splits = build_splits(DataConfig(root=str(tmp_path), multi_label=False, val_split=0.0), check=False)
    assert len(splits.train) == 2
    assert "2 labels but data.multi_label is false" in splits.skipped[0][1]


# --------------------------------------------------------------------------- checking files


def test_unreadable_files_are_skipped_and_reported(tmp_path):
    for i in range(4):
        write_image(tmp_path / "ok" / f"{i}.png", seed=i, size=(16, 16))
    good = write_image(tmp_path / "bad" / "good.jpg", size=(32, 32))
    (tmp_path / "bad" / "truncated.jpg").write_bytes(good.read_bytes()[:300])
    (tmp_path / "bad" / "empty.PNG").write_bytes(b"")
    (tmp_path / "bad" / "notes.jpg").write_text("not an image")
    (tmp_path / "bad" / "readme.md").write_text("ignored: not an image extension")
    splits = build_splits(DataConfig(root=str(tmp_path), val_split=0.0))
    assert len(splits.train) == 5
    reasons = {p.split("/")[-1]: r for p, r in splits.skipped}
    assert reasons == {"empty.PNG": "empty file", "notes.jpg": "not an image Pillow can identify", "truncated.jpg": "truncated file"}
    report = splits.write_report(tmp_path / "run")
    rows = list(csv.reader(report.open()))
    assert report.name == "skipped_files.csv" and rows[0] == ["path", "reason"] and len(rows) == 4
    with pytest.raises(DataError, match=r"(empty|notes|truncated).*data.strict"):
        build_splits(DataConfig(root=str(tmp_path), strict=True))
    unchecked = build_splits(DataConfig(root=str(tmp_path), val_split=0.0), check=False)
    assert len(unchecked.train) == 8


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        build_splits(DataConfig(root=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        build_splits(DataConfig(root=str(tmp_path / "empty")))
    write_image(tmp_path / "odd" / "val" / "cat" / "x.png")
    with pytest.raises(DataError, match="val/ but no train/ folder"):
        build_splits(DataConfig(root=str(tmp_path / "odd")))
    with pytest.raises(ConfigError, match="data.val_split"):
        build_splits(DataConfig(root=str(tmp_path), val_split=1.5))
    # every listed file missing (the images are in a subfolder the config does not name)
    write_image(tmp_path / "lf" / "pics" / "a.png")
    write_text(tmp_path / "lf" / "labels.txt", "a.png cat\n")
    with pytest.raises(DataError, match=r"labels.txt: none of its images is in .*set data.images=pics"):
        build_splits(DataConfig(root=str(tmp_path / "lf")))
    (tmp_path / "lf" / "pics" / "a.png").unlink()  # nowhere at all: the skipped-file summary
    with pytest.raises(DataError, match=r"no usable training images \(1 file\(s\) skipped, the first: .*a.png: labels.txt line 1: listed"):
        build_splits(DataConfig(root=str(tmp_path / "lf")))
    with pytest.raises(ConfigError, match="data.layout"):
        build_splits(DataConfig(root=str(tmp_path), layout="coco"))
    with pytest.raises(ConfigError, match="in_chans"):
        build_splits(DataConfig(root=str(tmp_path)), in_chans=4)


def test_dataset_subset_and_targets():
    ds = ImageDataset(["a.png", "b.png", "c.png"], [2, 0, 1], ["x", "y", "z"])
    sub = ds.subset([2, 0])
    assert [p.name for p in sub.paths] == ["c.png", "a.png"] and sub.targets.tolist() == [1, 2]
    assert sub.classes == ds.classes and ds.class_to_idx == {"x": 0, "y": 1, "z": 2}


def test_digits_default_split():
    splits = build_splits(DataConfig(), in_chans=1)
    assert splits.classes == [str(d) for d in range(10)] and not splits.skipped
    assert len(splits.train) + len(splits.val) == 1797
    assert abs(len(splits.val) - 0.2 * 1797) < 10
    image, _ = splits.val[0]
    assert image.shape == (1, 8, 8)


def test_a_label_file_whose_images_are_in_a_subfolder_names_the_setting(tmp_path):
    for i in range(4):
        write_image(tmp_path / "photos" / "set1" / f"{i}.png", seed=i)
    write_text(tmp_path / "labels.csv", "file,label\n" + "".join(f"set1/{i}.png,{'ab'[i % 2]}\n" for i in range(4)))
    with pytest.raises(DataError, match="set1/0.png is in .*photos; set data.images=photos$"):
        build_splits(DataConfig(root=str(tmp_path)), check=False)
    splits = build_splits(DataConfig(root=str(tmp_path), images="photos", val_split=0.5), check=False)
    assert len(splits.train) + len(splits.val) == 4


def test_a_csv_row_with_more_fields_than_its_header_is_skipped_not_read_as_labels(tmp_path):
    # one stray comma must not turn a single-label dataset into a multi-label one with a junk class
    for i in range(4):
        write_image(tmp_path / "images" / f"{i}.png", seed=i)
    write_text(tmp_path / "labels.csv", "filename,label\n0.png,cat\n1.png,dog\n2.png,cat\n3.png,dog,extra\n")
    splits = build_splits(DataConfig(root=str(tmp_path), val_split=0.0), check=False)
    assert not splits.multi_label and splits.classes == ["cat", "dog"]
    assert names_of(splits.train) == [("0.png", "cat"), ("1.png", "dog"), ("2.png", "cat")]
    reason = dict(splits.skipped)[str(tmp_path / "images" / "3.png")]
    assert "labels.csv line 5: 3 fields but the header has 2" in reason and "';'" in reason
    # a multi-hot CSV keeps its meaning when one row is too long
    write_text(tmp_path / "labels.csv", "file,sky,tree\n0.png,1,0\n1.png,0,1\n2.png,1,1\n3.png,1,0,1\n")
    splits = build_splits(DataConfig(root=str(tmp_path), val_split=0.0), check=False)
    assert splits.multi_label and splits.classes == ["sky", "tree"] and len(splits.train) == 3
