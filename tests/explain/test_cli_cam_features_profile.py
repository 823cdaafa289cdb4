"""`cvpipe cam`, `cvpipe features` and `cvpipe profile` on the digits default and on a user folder."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from cvpipe.cli import main


def open_png(path, shape=None):
    with Image.open(path) as im:
        assert im.format == "PNG"
        pixels = np.asarray(im.convert("RGB"))
    if shape is not None:
        assert pixels.shape[:2] == shape
    assert pixels.std() > 5, f"{path} is blank"
    return pixels


def test_cam_on_digits_with_faithfulness(digits_checkpoint, tmp_path, capsys):
    checkpoint, root = digits_checkpoint
    images = [str(root / "3" / "0045.png"), str(root / "7" / "0007.png")]
    code = main(["cam", str(checkpoint), *images, "method=gradcam,Eigen-CAM", "faithfulness=true",
                 f"project={tmp_path / 'cam'}"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    run = tmp_path / "cam" / "exp"
    for stem in ("0045", "0007"):
        for method in ("gradcam", "eigencam"):
            open_png(run / f"{stem}_{method}.png", shape=(32, 32))
            raw = np.load(run / f"{stem}_{method}.npy")
            assert raw.shape == (32, 32) and raw.dtype == np.float32 and 0 <= raw.min() and raw.max() <= 1
    open_png(run / "cam_grid.png")
    rows = list(csv.DictReader(open(run / "cam_summary.csv")))
    assert len(rows) == 4 and all(r["road"] != "" for r in rows)
    assert {r["method"] for r in rows} == {"gradcam", "eigencam"}
    # both methods explain the same class for an image
    assert len({(r["image"], r["target"]) for r in rows}) == 2
    assert "faithfulness gradcam" in out and "faithfulness eigencam" in out


def test_cam_summary_names_the_file_each_row_explains(digits_checkpoint, tmp_path):
    checkpoint, root = digits_checkpoint
    for folder, digit in (("a", "3"), ("b", "7")):  # two files of the same name
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.png").write_bytes((root / digit / sorted(p.name for p in (root / digit).iterdir())[0]).read_bytes())
    images = [str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png")]
    assert main(["cam", str(checkpoint), *images, f"project={tmp_path / 'cam'}"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "cam" / "exp" / "cam_summary.csv")))
    assert [(r["image"], r["source"]) for r in rows] == [("x", images[0]), ("x_2", images[1])]


def test_cam_on_a_user_folder_with_a_named_target(folder_checkpoint, tmp_path, capsys):
    checkpoint, root = folder_checkpoint
    code = main(["cam", str(checkpoint), str(root), "method=gradcam,layercam", "target=dog", "layer=layer3,layer4",
                 "batch=3", f"project={tmp_path / 'cam'}"])  # fmt: skip
    assert code == 0
    run = tmp_path / "cam" / "exp"
    rows = list(csv.DictReader(open(run / "cam_summary.csv")))
    assert len(rows) == 8 and {r["target"] for r in rows} == {"dog"}
    for r in rows:
        open_png(r["overlay"], shape=(48, 48))  # the model's input size
    open_png(run / "cam_grid.png")
    assert "4 images explained" in capsys.readouterr().out
    # ResNet ends in global average pooling + linear, so the original CAM applies to layer4
    assert main(["cam", str(checkpoint), str(root), "method=cam", f"project={tmp_path / 'cam'}"]) == 0
    assert len(list((tmp_path / "cam" / "exp2").glob("*_cam.npy"))) == 4


def test_cam_all_methods_skips_cam_for_a_head_that_is_not_gap_linear(digits_checkpoint, tmp_path, capsys):
    checkpoint, root = digits_checkpoint
    code = main(["cam", str(checkpoint), str(root / "1" / "0001.png"), "method=all", f"project={tmp_path}"])
    out = capsys.readouterr().out
    assert code == 0 and "skipped cam" in out
    assert len(list((tmp_path / "exp").glob("0001_*.png"))) == 7


@pytest.mark.parametrize(
    "extra,message",
    [
        (["method=smoothgrad"], "unknown CAM method"),
        (["layer=features.nope"], "not a module"),
        (["target=12"], "out of range"),
        (["method=cam"], "method=cam needs"),
        (["colour=red"], "unknown option colour"),
        (["method=,"], "at least one CAM method"),
        (["batch=0"], "batch=0"),
        (["alpha=1.5"], "alpha=1.5"),
        (["grid=-1"], "grid=-1"),
    ],
)
def test_cam_user_errors_are_one_line(digits_checkpoint, tmp_path, capsys, extra, message):
    checkpoint, root = digits_checkpoint
    code = main(["cam", str(checkpoint), str(root / "1" / "0001.png"), *extra, f"project={tmp_path / 'cam'}"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert list((tmp_path / "cam").glob("*")) == []  # no empty numbered output folder left behind


def test_cam_missing_image(digits_checkpoint, tmp_path, capsys):
    checkpoint, _ = digits_checkpoint
    assert main(["cam", str(checkpoint), str(tmp_path / "none.png")]) == 2
    assert "none.png" in capsys.readouterr().err


def test_features_list_and_grids(digits_checkpoint, tmp_path, capsys):
    checkpoint, root = digits_checkpoint
    assert main(["features", str(checkpoint), "--list"]) == 0
    listing = capsys.readouterr().out
    assert "features.conv1" in listing and "[1, 6, 32, 32]" in listing and "default layer" in listing
    code = main(["features", str(checkpoint), str(root / "5" / "0005.png"), "layer=features.conv1,features.conv2",
                 "topk=4", f"project={tmp_path}"])  # fmt: skip
    assert code == 0
    for name in ("features_features_conv1.png", "features_features_conv2.png"):
        open_png(tmp_path / "exp" / name)
    assert main(["features", str(checkpoint)]) == 2
    assert "exactly one image" in capsys.readouterr().err
    for bad, message in (("layer=features.nope", "not a module"), ("topk=0", "topk=0")):
        code = main(["features", str(checkpoint), str(root / "5" / "0005.png"), bad, f"project={tmp_path / 'bad'}"])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists() or list((tmp_path / "bad").iterdir()) == []


def test_features_on_a_user_image(folder_checkpoint, tmp_path):
    checkpoint, root = folder_checkpoint
    image = next(root.rglob("*.jpg"))
    assert main(["features", str(checkpoint), str(image), f"project={tmp_path}"]) == 0
    open_png(tmp_path / "exp" / "features_layer4.png")


def test_profile_a_checkpoint_and_a_model_name(digits_checkpoint, tmp_path, capsys):
    checkpoint, _ = digits_checkpoint
    assert main(["profile", str(checkpoint), "runs=2", "batch=4", f"project={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "FLOPs = 2 x MACs" in out and "[4, 1, 32, 32]" in out
    run = tmp_path / "exp"
    data = json.loads((run / "profile.json").read_text())
    assert data["input_shape"] == [4, 1, 32, 32] and data["latency"]["batch"] == 4
    for name in ("profile_cost.png", "profile_rf.png"):
        open_png(run / name)
    assert (run / "profile.txt").read_text().startswith("digits.pt")

    assert main(["profile", "resnet18", "imgsz=[64,48]", "runs=0", "num_classes=7", "save=false"]) == 0
    out = capsys.readouterr().out
    assert "[1, 3, 64, 48]" in out and "[1, 7]" in out and "latency" not in out
    assert main(["profile", "resnet1800"]) == 2
    assert "did you mean" in capsys.readouterr().err


@pytest.mark.parametrize(
    "model,extra,message",
    [
        ("lenet", ["imgsz=8"], "lenet cannot run on a 3x8x8 (CxHxW) input"),  # smaller than its 5x5 kernels
        ("tv:vit_b_32", ["imgsz=64"], "Expected 224"),  # torchvision's ViT takes one size only
        ("lenet", ["imgsz=0"], "imgsz=0"),
        ("lenet", ["in_chans=0"], "in_chans=0"),
        ("lenet", ["num_classes=-1"], "num_classes=-1"),
    ],
)
def test_profile_user_errors_are_one_line(model, extra, message, capsys):
    assert main(["profile", model, *extra, "runs=0", "save=false"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cam_skips_a_broken_image_in_a_folder(folder_checkpoint, tmp_path, capsys):
    """Like predict: one unreadable file does not stop the rest (nor leave a half-written run)."""
    checkpoint, root = folder_checkpoint
    images = tmp_path / "mixed"
    images.mkdir()
    good = next(root.rglob("*.jpg"))
    (images / good.name).write_bytes(good.read_bytes())
    (images / "broken.png").write_bytes(b"not a png")
    assert main(["cam", str(checkpoint), str(images), f"project={tmp_path / 'cam'}"]) == 0
    out = capsys.readouterr().out
    assert "skipped: image" in out and "broken.png" in out and "1 images explained" in out
    assert (tmp_path / "cam" / "exp" / "cam_summary.csv").exists()
    (images / good.name).unlink()
    assert main(["cam", str(checkpoint), str(images), f"project={tmp_path / 'cam'}"]) == 2
    assert "broken.png" in capsys.readouterr().err


def test_cam_names_each_method_once_and_mentions_only_the_files_it_wrote(digits_checkpoint, tmp_path, capsys):
    checkpoint, root = digits_checkpoint
    image = str(root / "3" / "0045.png")
    # the same method twice (two spellings) used to write its files twice and two summary rows
    assert main(["cam", str(checkpoint), image, "method=gradcam,GradCAM,eigencam", f"project={tmp_path / 'cam'}"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "cam" / "exp" / "cam_summary.csv")))
    assert [r["method"] for r in rows] == ["gradcam", "eigencam"]
    assert main(["cam", str(checkpoint), image, "method=gradcam,eigencam", f"project={tmp_path / 'cam'}"]) == 0
    # the grid has one column per method, as for the method list without the repeat
    assert open_png(tmp_path / "cam" / "exp" / "cam_grid.png").shape == open_png(tmp_path / "cam" / "exp2" / "cam_grid.png").shape
    capsys.readouterr()
    # grid=0 writes no grid, and the last line must not send the user looking for one
    assert main(["cam", str(checkpoint), image, "grid=0", f"project={tmp_path / 'cam'}"]) == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "cam" / "exp3" / "cam_grid.png").exists()
    assert "cam_grid.png" not in out and f"overlays and maps (no grid: grid=0) in {tmp_path / 'cam' / 'exp3'}" in out


def test_profile_of_a_checkpoint_refuses_other_channels_or_classes(digits_checkpoint, capsys):
    # in_chans/num_classes build a model from a name; with a checkpoint they were silently
    # ignored, so `in_chans=3` printed the 1-channel model's numbers as if for 3 channels
    checkpoint, _ = digits_checkpoint
    for extra, message in ((["in_chans=3"], "in_chans=3: "), (["num_classes=5"], "num_classes=5: ")):
        assert main(["profile", str(checkpoint), *extra, "runs=0", "save=false"]) == 2
        err = capsys.readouterr().err
        assert message in err and "trained with" in err and len(err.strip().splitlines()) == 1
    assert main(["profile", str(checkpoint), "in_chans=1", "num_classes=10", "runs=0", "save=false"]) == 0
    assert "[1, 1, 32, 32]" in capsys.readouterr().out
