"""Image reading: every pixel format to uint8 RGB/grey, and every broken file to a DataError."""

import io
import warnings

import numpy as np
import pytest
import torch
import torchvision.io
from PIL import Image

from cvpipe.data.image_io import check_image, inspect_image, is_image_file, read_image
from cvpipe.errors import DataError

from data_files import write_image


def _rgb(height=5, width=7, seed=0):
    return (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)


def test_extensions_are_case_insensitive():
    assert is_image_file("a/IMG_0001.JPG") and is_image_file("b.Png") and is_image_file("c.jpeg")
    assert not is_image_file("labels.txt") and not is_image_file("noext")


pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")  # torchvision.io as oracle


def test_png_matches_torchvision_decoder(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(_rgb()).save(path)
    expected = torchvision.io.decode_image(str(path), mode=torchvision.io.ImageReadMode.RGB)
    got = read_image(path)
    assert got.dtype == torch.uint8 and got.shape == (3, 5, 7)
    assert torch.equal(got, expected)
    grey = read_image(path, "L")
    assert grey.shape == (1, 5, 7)
    assert torch.equal(grey[0], torch.from_numpy(np.array(Image.open(path).convert("L"))))


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((4, 6, 3), np.uint8)
    pixels[0, 0] = [255, 0, 0]  # a red top-left corner
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = tmp_path / "rotated.png"
    image.save(path, exif=exif.tobytes())
    got = read_image(path)
    assert got.shape == (3, 6, 4)  # width and height swapped
    assert got[:, 0, -1].tolist() == [255, 0, 0]  # the corner is now top-right
    oracle = torchvision.io.decode_image(str(path), apply_exif_orientation=True)
    assert torch.equal(got, oracle)
    jpeg = tmp_path / "rotated.JPG"
    image.save(jpeg, exif=exif.tobytes(), quality=95)
    assert read_image(jpeg).shape == (3, 6, 4)


def test_grey_and_bilevel_become_rgb(tmp_path):
    grey = np.arange(35, dtype=np.uint8).reshape(5, 7) * 7
    Image.fromarray(grey).save(tmp_path / "g.png")
    got = read_image(tmp_path / "g.png")
    assert got.shape == (3, 5, 7) and all(torch.equal(got[c], torch.from_numpy(grey)) for c in range(3))
    Image.fromarray(grey > 100).save(tmp_path / "b.png")
    assert set(read_image(tmp_path / "b.png", "L").unique().tolist()) == {0, 255}


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    image = Image.new("P", (3, 2))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putpixel((0, 0), 1)
    image.info["transparency"] = 0  # palette entry 0 is transparent
    image.save(tmp_path / "p.png", transparency=0)
    got = read_image(tmp_path / "p.png")
    assert got[:, 0, 0].tolist() == [200, 100, 50]  # opaque entry kept
    assert got[:, 1, 1].tolist() == [255, 255, 255]  # transparent -> white, not (10, 20, 30)


def test_rgba_is_alpha_blended_over_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = [0, 0, 200]
    rgba[..., 3] = [[0, 255], [128, 64]]
    Image.fromarray(rgba).save(tmp_path / "a.png")
    got = read_image(tmp_path / "a.png").permute(1, 2, 0).to(torch.float64)
    alpha = torch.tensor(rgba[..., 3:], dtype=torch.float64) / 255
    expected = torch.tensor(rgba[..., :3], dtype=torch.float64) * alpha + 255 * (1 - alpha)
    assert (got - expected).abs().max() <= 1.0


def test_cmyk_converted_like_pillow(tmp_path):
    Image.fromarray(_rgb()).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    oracle = np.array(Image.open(tmp_path / "c.jpg").convert("RGB"))
    assert torch.equal(read_image(tmp_path / "c.jpg"), torch.from_numpy(oracle).permute(2, 0, 1))


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000, 30000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    got = read_image(tmp_path / "g16.png", "L")[0, 0]
    assert got.tolist() == np.rint(values[0] / 257).astype(int).tolist()  # [0, 1, 4, 117, 255]
    assert read_image(tmp_path / "g16.png").shape == (3, 1, 5)


def test_float_image_outside_unit_range_is_refused(tmp_path):
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(tmp_path / "f.tif")
    assert read_image(tmp_path / "f.tif", "L")[0, 0].tolist() == [0, 128, 255]
    Image.fromarray(np.array([[0.0, 3.0]], np.float32)).save(tmp_path / "hdr.tif")
    with pytest.raises(DataError, match="hdr.tif"):
        read_image(tmp_path / "hdr.tif")


@pytest.mark.parametrize("pixels", [2_500, 10_000])  # within Pillow's warning band, and beyond its error
def test_decompression_bomb_is_an_error(tmp_path, monkeypatch, pixels):
    side = int(pixels**0.5)
    Image.new("L", (side, side)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning may escape either
        with pytest.raises(DataError, match="bomb.png.*decompression bomb"):
            read_image(tmp_path / "bomb.png")
        assert "decompression bomb" in check_image(tmp_path / "bomb.png")
    # the filters we touched while opening are restored
    assert not any(f[2] is Image.DecompressionBombWarning and f[0] == "error" for f in warnings.filters)


def test_broken_files_are_reported_with_a_reason(tmp_path):
    good = write_image(tmp_path / "good.jpg", size=(64, 48))
    data = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("this is not an image")
    png = write_image(tmp_path / "good.png", size=(64, 48))
    (tmp_path / "cut.png").write_bytes(png.read_bytes()[:-200])
    assert check_image(good) is None and check_image(png) is None
    reasons = {name: check_image(tmp_path / name) for name in ["truncated.jpg", "empty.png", "text.png", "cut.png", "missing.png"]}
    assert reasons == {
        "truncated.jpg": "truncated file",
        "empty.png": "empty file",
        "text.png": "not an image Pillow can identify",
        "cut.png": "truncated file",
        "missing.png": "file not found",
    }
    for name in reasons:
        with pytest.raises(DataError, match=name):
            read_image(tmp_path / name)


def test_inspect_reads_size_from_a_stream(tmp_path):
    path = write_image(tmp_path / "a.png", size=(9, 4))
    info = inspect_image(io.BytesIO(path.read_bytes()), name=path)
    assert (info.problem, info.width, info.height, info.mode) == (None, 9, 4, "RGB")


def test_pillow_set_to_pad_truncated_files_is_refused(tmp_path, monkeypatch):
    from PIL import ImageFile

    from cvpipe.config import DataConfig
    from cvpipe.data.datasets import build_splits

    path = write_image(tmp_path / "a" / "x.png")
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(DataError, match="LOAD_TRUNCATED_IMAGES"):
        read_image(path)
    with pytest.raises(DataError, match="LOAD_TRUNCATED_IMAGES"):
        build_splits(DataConfig(root=str(tmp_path), val_split=0.0))
