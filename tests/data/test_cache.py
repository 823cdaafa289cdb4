"""data.cache: decoded images in RAM give exactly what reading the files gives."""

import numpy as np
import pytest
import torch
from data_files import write_image
from PIL import Image
from torch.utils.data import DataLoader

import cvpipe.data.cache as cache_module
from cvpipe.data.cache import ImageCache, cache_datasets, decoded_sizes
from cvpipe.data.datasets import ImageDataset
from cvpipe.data.image_io import read_image


@pytest.fixture
def mixed_images(tmp_path):
    """Sizes, formats and pixel modes that decode differently, plus an EXIF-rotated file."""
    paths = [
        write_image(tmp_path / "a.png", size=(7, 5), seed=1),
        write_image(tmp_path / "b.jpg", size=(16, 9), seed=2),
        write_image(tmp_path / "c.png", size=(3, 11), seed=3, mode="L"),
        write_image(tmp_path / "d.png", size=(8, 8), seed=4, mode="P"),
        write_image(tmp_path / "e.png", size=(5, 4), seed=5, mode="RGBA"),
    ]
    rotated = Image.fromarray((np.arange(4 * 6 * 3) % 256).astype(np.uint8).reshape(4, 6, 3))
    exif = rotated.getexif()
    exif[0x0112] = 6  # shown rotated: 4 x 6 becomes 6 x 4
    rotated.save(tmp_path / "f.png", exif=exif.tobytes())
    return [*paths, tmp_path / "f.png"]


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_cached_images_equal_the_decoded_files(mixed_images, mode):
    cache = ImageCache.build(mixed_images, mode)
    assert len(cache) == len(mixed_images)
    assert cache.nbytes == sum(read_image(p, mode).numel() for p in mixed_images) == sum(decoded_sizes(mixed_images, mode))
    for i, path in enumerate(mixed_images):
        got = cache[i]
        assert got.dtype == torch.uint8 and torch.equal(got, read_image(path, mode)), path
    assert cache[5].shape == ((3 if mode == "RGB" else 1), 6, 4)  # EXIF rotation applied


def test_a_sample_is_a_copy_so_an_inplace_transform_cannot_change_the_cache(mixed_images):
    cache = ImageCache.build(mixed_images, "RGB")
    cache[0].zero_()
    assert torch.equal(cache[0], read_image(mixed_images[0]))


def test_spawned_loader_workers_read_the_cache(mixed_images, tmp_path):
    # macOS/Windows start DataLoader workers by spawn: the dataset is pickled to them, its cache
    # through shared memory; the files are gone, so every sample must come from the cache
    dataset = ImageDataset(mixed_images, [0, 1, 0, 1, 0, 1], ["x", "y"], mode="L")
    expected = [read_image(p, "L") for p in mixed_images]
    cache_datasets([dataset])
    for path in mixed_images:
        path.unlink()
    loader = DataLoader(dataset, batch_size=None, num_workers=1, multiprocessing_context="spawn")
    got = [image for image, _ in loader]
    assert len(got) == 6 and all(torch.equal(a, b) for a, b in zip(got, expected))


def test_datasets_are_cached_only_when_they_fit(mixed_images, monkeypatch):
    train = ImageDataset(mixed_images[:4], [0, 1, 0, 1], ["x", "y"])
    val = ImageDataset(mixed_images[4:], [0, 1], ["x", "y"])
    need = sum(decoded_sizes(mixed_images, "RGB"))
    monkeypatch.setattr(cache_module, "available_memory", lambda: need)  # no headroom left
    cached, message = cache_datasets([train, val])
    assert not cached and train.cache is None and val.cache is None
    assert "not caching" in message and "6 decoded images" in message and "read from disk" in message
    monkeypatch.setattr(cache_module, "available_memory", lambda: 4 * need)
    assert not cache_datasets([train, val], processes=4)[0]  # every process on the machine holds a copy
    cached, message = cache_datasets([train, val], processes=2)
    assert cached and "6 decoded images held in RAM" in message
    assert [torch.equal(train[i][0], read_image(p)) for i, p in enumerate(mixed_images[:4])] == [True] * 4
    assert torch.equal(val[1][0], read_image(mixed_images[5]))
