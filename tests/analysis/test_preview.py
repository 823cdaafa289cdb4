"""`cvpipe preview`: the augmentation grid on the digits default and on a user folder."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cvpipe.analysis.preview import preview_augmentations
from cvpipe.cli import main
from cvpipe.config import load_config

DPI = 120  # cvpipe.viz.save_figure
CELL = 1.5  # inches per grid cell in the preview


def _png(path):
    return np.asarray(Image.open(path).convert("RGB"))


def _assert_grid(path, rows, cols):
    pixels = _png(path)
    assert pixels.shape == (round((CELL * rows + 0.3) * DPI), round(CELL * cols * DPI), 3)
    assert pixels.std() > 10  # images, titles: not a blank canvas


def _user_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("apple", "pear", "plum"):
        for i in range(4):
            (root / cls).mkdir(parents=True, exist_ok=True)
            size = (40 + 10 * i, 30)  # differing sizes and aspect ratios
            Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(root / cls / f"{i}.jpg")
    (root / "pear" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def test_preview_on_digits_is_a_seeded_grid(tmp_path):
    cfg = load_config("digits")
    first = preview_augmentations(cfg, tmp_path / "a.png", n=3, draws=2)
    _assert_grid(first, rows=3, cols=4)  # original, 2 draws, eval
    again = preview_augmentations(cfg, tmp_path / "b.png", n=3, draws=2)
    assert np.array_equal(_png(first), _png(again))
    cfg.train.seed = 1
    other = preview_augmentations(cfg, tmp_path / "c.png", n=3, draws=2)
    assert not np.array_equal(_png(first), _png(other))


def test_preview_on_a_user_folder_skips_unreadable_images(tmp_path):
    root = _user_folder(tmp_path / "fruit")
    cfg = load_config(None, [f"data.root={root}", "data.augment.image_size=24", "data.augment.color_jitter=[0.4,0.4,0.4,0.1]"])
    out = preview_augmentations(cfg, tmp_path / "fruit.png", n=5, draws=3)
    _assert_grid(out, rows=5, cols=5)


def test_preview_cli(tmp_path, capsys):
    root = _user_folder(tmp_path / "fruit")
    out = tmp_path / "cli.png"
    status = main(["preview", f"data.root={root}", "model.in_chans=3", "--out", str(out), "-n", "2", "--draws", "1"])
    assert status == 0
    _assert_grid(out, rows=2, cols=3)
    assert "not shown" not in capsys.readouterr().out
    mixed = ["data.augment.mixup=0.2", "data.augment.cutmix=1.0", "data.augment.auto_augment=trivialaugment"]
    assert main(["preview", f"data.root={root}", *mixed, "--out", str(out), "-n", "2", "--draws", "1"]) == 0
    _assert_grid(out, rows=2, cols=3)  # the per-image auto-augment is in the grid; batch mixing is only named
    assert "data.augment.mixup/cutmix also blend each batch's images in pairs during training; not shown" in capsys.readouterr().out
    assert main(["preview", f"data.root={tmp_path / 'missing'}", "--out", str(out)]) == 2
    assert main(["preview", "data.augment.rotaton=5"]) == 2  # typo: one-line config error
    folder = tmp_path / "previews"
    folder.mkdir()
    assert main(["preview", f"data.root={root}", "--out", str(folder), "-n", "1", "--draws", "1"]) == 0
    _assert_grid(folder / "augmentations.png", rows=1, cols=3)
    assert main(["preview", f"data.root={root}", "--out", str(tmp_path / "grid"), "-n", "1", "--draws", "1"]) == 0
    _assert_grid(tmp_path / "grid.png", rows=1, cols=3)  # a bare name gets the extension it is written in


def test_preview_refuses_nonsense_counts():
    with pytest.raises(ValueError):
        preview_augmentations(load_config("digits"), "x.png", n=0)


def test_preview_out_with_another_extension_is_refused_and_the_file_kept(tmp_path, capsys):
    # `cvpipe preview photos.yaml --out photos.yaml` must not replace the config with a PNG
    root = _user_folder(tmp_path / "fruit")
    config = tmp_path / "photos.yaml"
    config.write_text(f"data:\n  root: {root}\nmodel:\n  in_chans: 3\n")
    before = config.read_bytes()
    assert main(["preview", str(config), "--out", str(config), "-n", "1", "--draws", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "photos.yaml" in err and ".png" in err
    assert config.read_bytes() == before
    assert main(["preview", str(config), "--out", str(tmp_path / "AUG.PNG"), "-n", "1", "--draws", "1"]) == 0
    _assert_grid(tmp_path / "AUG.PNG", rows=1, cols=3)


def test_preview_without_out_keeps_every_earlier_grid(tmp_path, monkeypatch, capsys):
    # Tuning by eye means several previews in a row; each one used to replace
    # runs/preview/augmentations.png, so the grid to compare against was gone.
    root = _user_folder(tmp_path / "fruit")
    monkeypatch.chdir(tmp_path)
    assert main(["preview", f"data.root={root}", "-n", "1", "--draws", "1"]) == 0
    first = tmp_path / "runs" / "preview" / "exp" / "augmentations.png"
    assert f"written to {Path('runs/preview/exp/augmentations.png')}" in capsys.readouterr().out
    before = first.read_bytes()
    assert main(["preview", f"data.root={root}", "data.augment.rotation=45", "-n", "2", "--draws", "1"]) == 0
    assert first.read_bytes() == before
    _assert_grid(first, rows=1, cols=3)
    _assert_grid(tmp_path / "runs" / "preview" / "exp2" / "augmentations.png", rows=2, cols=3)
    assert main(["preview", f"data.root={tmp_path / 'missing'}"]) == 2  # a failed preview leaves no empty folder
    assert sorted(p.name for p in (tmp_path / "runs" / "preview").iterdir()) == ["exp", "exp2"]
