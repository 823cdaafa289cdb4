"""`cvpipe dataset-report`: counts, sizes, duplicates and unreadable files, on digits and a folder."""

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from cvpipe.analysis.dataset_report import dataset_report
from cvpipe.cli import main
from cvpipe.config import load_config

PLOTS = ("class_counts.png", "image_sizes.png", "samples_per_class.png")


def _assert_plots(folder: Path):
    for name in PLOTS:
        pixels = np.asarray(Image.open(folder / name).convert("RGB"))
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500, name
        assert pixels.std() > 10, name  # drawn, not blank


def _write(path: Path, size, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def _user_folder(root: Path) -> Path:
    """train/val folders; one duplicate within train, one leaking into val, broken files."""
    sizes = {"cat": (20, 10), "dog": (12, 12), "10": (30, 15)}
    for k, (cls, size) in enumerate(sizes.items()):
        for i in range(3):
            _write(root / "train" / cls / f"{i}.png", size, seed=10 * k + i)
    _write(root / "val" / "dog" / "v0.png", (12, 12), seed=99)
    shutil.copy(root / "train" / "cat" / "0.png", root / "train" / "cat" / "copy.png")
    shutil.copy(root / "train" / "dog" / "1.png", root / "val" / "dog" / "leak.png")
    (root / "train" / "dog" / "empty.png").write_bytes(b"")
    (root / "val" / "dog" / "empty too.png").write_bytes(b"")  # same bytes, but no image: not a leak
    (root / "train" / "10" / "cut.png").write_bytes((root / "train" / "10" / "0.png").read_bytes()[:60])
    return root


def test_report_on_a_user_folder(tmp_path):
    root = _user_folder(tmp_path / "pets")
    out = tmp_path / "report"
    summary = dataset_report(root, out)
    assert summary["layout"] == "folder" and summary["classes"] == ["10", "cat", "dog"]
    assert summary["per_class"] == {"train": {"10": 3, "cat": 4, "dog": 3}, "val": {"10": 0, "cat": 0, "dog": 2}}
    assert summary["images"] == {"train": 12, "val": 3}  # listed, including the 3 broken ones
    assert summary["readable_images"] == 12
    reasons = {Path(u["path"]).name: u["reason"] for u in summary["unreadable"]}
    assert reasons == {"empty.png": "empty file", "empty too.png": "empty file", "cut.png": "truncated file"}
    groups = sorted((sorted(Path(p).name for p in group["files"]), group["splits"]) for group in summary["duplicates"])
    assert groups == [(["0.png", "copy.png"], ["train"]), (["1.png", "leak.png"], ["train", "val"])]
    assert summary["duplicates_across_splits"] == 1
    assert summary["sizes"]["width"] == {"min": 12, "median": 20.0, "max": 30}
    assert summary["sizes"]["distinct_sizes"] == 3
    assert summary["pixel_formats"] == {"RGB": 12}
    assert json.loads((out / "summary.json").read_text()) == summary
    markdown = (out / "summary.md").read_text()
    assert "| cat | 4 | 0 |" in markdown and "empty.png" in markdown and "leak.png` (across train and val" in markdown
    _assert_plots(out)


def test_report_on_digits(tmp_path):
    summary = dataset_report(load_config("digits"), tmp_path)
    assert sum(summary["images"].values()) == summary["readable_images"] == 1797
    assert summary["sizes"]["distinct_sizes"] == 1 and summary["pixel_formats"] == {"L": 1797}
    assert summary["unreadable"] == []
    counts = [summary["per_class"]["train"][c] + summary["per_class"]["val"][c] for c in summary["classes"]]
    from sklearn.datasets import load_digits

    assert counts == np.bincount(load_digits().target).tolist()
    _assert_plots(tmp_path)


def test_report_on_multi_label_data(tmp_path):
    root = tmp_path / "tags"
    for i in range(6):
        _write(root / f"{i}.png", (8, 6), seed=i)
    (root / "labels.csv").write_text("file,sky,sea\n" + "".join(f"{i}.png,{i % 2},{int(i > 2)}\n" for i in range(6)))
    summary = dataset_report(root, tmp_path / "out")
    assert summary["multi_label"] and summary["classes"] == ["sky", "sea"]
    totals = {c: sum(split[c] for split in summary["per_class"].values()) for c in summary["classes"]}
    assert totals == {"sky": 3, "sea": 3}
    _assert_plots(tmp_path / "out")


def test_dataset_report_cli(tmp_path, capsys):
    root = _user_folder(tmp_path / "pets")
    assert main(["dataset-report", str(root), "--out", str(tmp_path / "r")]) == 0
    assert "unreadable: 3, duplicate groups: 2 (1 across splits)" in capsys.readouterr().out
    _assert_plots(tmp_path / "r")
    assert main(["dataset-report", str(tmp_path / "nowhere")]) == 2
    assert "no such folder, config file or preset" in capsys.readouterr().err
    taken = tmp_path / "notes.txt"
    taken.write_text("a file where the report folder should go")
    assert main(["dataset-report", str(root), "--out", str(taken)]) == 2
    assert "notes.txt: is a file; give a folder" in capsys.readouterr().err


def test_reports_without_out_get_numbered_folders(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pets = _user_folder(tmp_path / "pets")
    assert main(["dataset-report", str(pets)]) == 0
    assert main(["dataset-report", str(pets), "data.val_split=0.5"]) == 0  # a second report keeps the first
    out = capsys.readouterr().out
    assert "runs/dataset-report/exp/summary.md" in out and "runs/dataset-report/exp2/summary.md" in out
    _assert_plots(tmp_path / "runs" / "dataset-report" / "exp")
    _assert_plots(tmp_path / "runs" / "dataset-report" / "exp2")
    assert main(["dataset-report", str(pets), "data.layout=pertxt"]) == 2  # fails: leaves no empty folder
    assert sorted(p.name for p in (tmp_path / "runs" / "dataset-report").iterdir()) == ["exp", "exp2"]
