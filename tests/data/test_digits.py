"""The embedded digits dataset: materialised once, exactly, and safely under a race."""

import multiprocessing
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from cvpipe.data.digits import DIGITS_FOLDER, digits_root


def test_digits_folder_matches_sklearn():
    root = digits_root()
    files = sorted(root.glob("*/*.png"))
    assert len(files) == 1797
    assert sorted(p.name for p in root.iterdir()) == [str(d) for d in range(10)]
    digits = load_digits()
    counts = [len(list((root / str(d)).glob("*.png"))) for d in range(10)]
    assert counts == np.bincount(digits.target).tolist()
    for index in (0, 5, 1000, 1796):  # file name = sklearn index; pixels = value * 255 / 16
        path = root / str(digits.target[index]) / f"{index:04d}.png"
        pixels = np.array(Image.open(path))
        assert pixels.shape == (8, 8) and pixels.dtype == np.uint8
        assert np.array_equal(pixels, np.rint(digits.images[index] * 255 / 16))
    assert any(np.array(Image.open(f)).max() == 255 for f in files[:20])  # 16 -> 255, full range


def test_digits_is_written_once():
    root = digits_root()
    stamp = {p: p.stat().st_mtime_ns for p in list(root.glob("*/*.png"))[:50]}
    assert digits_root() == root
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    assert not [p for p in root.parent.iterdir() if p.name.startswith(f".{DIGITS_FOLDER}")]  # no staging left


def _materialise(_):
    return str(digits_root())


def test_two_processes_racing_get_one_complete_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CVPIPE_CACHE", str(tmp_path / "cache"))
    with multiprocessing.get_context("fork").Pool(2) as pool:
        roots = pool.map(_materialise, [0, 1])
    assert roots[0] == roots[1]
    assert len(list(Path(roots[0]).glob("*/*.png"))) == 1797
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [DIGITS_FOLDER]  # losers cleaned up


def test_cache_location_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CVPIPE_CACHE", str(tmp_path / "elsewhere"))
    from cvpipe.data.digits import cache_dir

    assert cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("CVPIPE_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "cvpipe"
