"""Decoded images held in RAM (``data.cache=true``), Ultralytics' ``cache=ram`` for classification.

Every image is decoded once, before the first epoch, into one flat ``uint8`` buffer; a sample
is then a copy out of that buffer instead of a file read and decode. The augmentation still
runs per sample and per epoch, so results are the same as without the cache.

One buffer rather than a tensor per image: DataLoader workers started by *spawn* (macOS,
Windows) receive tensors through shared memory, one handle per tensor, so three tensors cost
three handles where 100,000 small ones would exhaust the process's file descriptors. Workers
started by *fork* (Linux) share the pages copy-on-write and nothing is copied.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from PIL import Image
from tqdm.auto import tqdm

from cvpipe.data.image_io import read_image
from cvpipe.errors import DataError
from cvpipe.utils import can_draw_bar, file_threads

PathLike = Union[str, Path]
HEADROOM = 1.25  # cache only when the memory available is at least this multiple of its size


class ImageCache:
    """``cache[i]``: image ``i`` as a fresh ``uint8`` (C, H, W) tensor, as :func:`read_image` gives it.

    Attributes:
        buffer: (sum of C*H*W,) uint8, every image's pixels one after another.
        offsets: (N + 1,) int64, image ``i`` is ``buffer[offsets[i]:offsets[i + 1]]``.
        shapes: (N, 3) int64, (C, H, W) of each image.
    """

    def __init__(self, buffer: torch.Tensor, offsets: torch.Tensor, shapes: torch.Tensor):
        self.buffer, self.offsets, self.shapes = buffer, offsets, shapes

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, index: int) -> torch.Tensor:
        start, end = self.offsets[index].item(), self.offsets[index + 1].item()
        # a copy: a transform that writes into its input must not change the cached pixels
        return self.buffer[start:end].view(*self.shapes[index].tolist()).clone()

    @property
    def nbytes(self) -> int:
        return self.buffer.numel()

    @classmethod
    def build(cls, paths: Sequence[PathLike], mode: str, sizes: Optional[Sequence[int]] = None, desc: str = "caching images") -> "ImageCache":
        """Decode ``paths`` (as ``read_image(path, mode)``) into one buffer, from a thread pool.

        ``sizes`` are the bytes of each decoded image (from :func:`decoded_sizes`, read from
        the headers when not given); the buffer is allocated once at its final size.
        """
        sizes = list(sizes) if sizes is not None else decoded_sizes(paths, mode)
        offsets = torch.zeros(len(paths) + 1, dtype=torch.int64)
        offsets[1:] = torch.tensor(sizes, dtype=torch.int64).cumsum(0)
        buffer = torch.empty(int(offsets[-1]), dtype=torch.uint8)
        shapes = torch.zeros(len(paths), 3, dtype=torch.int64)

        def fill(index: int) -> None:
            image = read_image(paths[index], mode)
            if image.numel() != sizes[index]:  # the file changed since its header was read
                raise DataError(f"{paths[index]}: changed while the images were being cached; run again")
            buffer[offsets[index] : offsets[index + 1]] = image.flatten()
            shapes[index] = torch.tensor(image.shape)

        show = len(paths) >= 500 and os.environ.get("RANK", "0") == "0" and can_draw_bar()
        with ThreadPoolExecutor(max_workers=file_threads()) as pool:
            done = pool.map(fill, range(len(paths)))
            for _ in tqdm(done, total=len(paths), desc=desc, unit="img", disable=not show, leave=False):
                pass  # fill() writes into the buffer; iterating only waits (and re-raises its errors)
        return cls(buffer, offsets, shapes)


def decoded_sizes(paths: Sequence[PathLike], mode: str) -> list[int]:
    """Bytes each image takes decoded in ``mode`` (C*H*W; EXIF rotation keeps the count), from
    the file headers alone."""
    channels = 1 if mode == "L" else 3

    def size(path: PathLike) -> int:
        try:
            with Image.open(path) as image:
                return channels * image.width * image.height
        except (OSError, Image.DecompressionBombError) as e:  # checked images open; a file replaced since may not
            raise DataError(f"{path}: cannot be read any more ({e}); run again") from None

    with ThreadPoolExecutor(max_workers=file_threads()) as pool:
        return list(pool.map(size, paths))


def available_memory() -> Optional[int]:
    """Bytes of RAM the system can give without swapping (Linux ``MemAvailable``; free pages
    elsewhere), or None when the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # no /proc (macOS, Windows): ask sysconf below
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def cache_datasets(datasets: Sequence, processes: int = 1) -> tuple[bool, str]:
    """Give each :class:`~cvpipe.data.datasets.ImageDataset` an :class:`ImageCache` when all of
    them fit in the memory available (``processes`` copies, one per training process on this
    machine, with :data:`HEADROOM`). Returns (cached, a line saying what was done)."""
    sizes = [decoded_sizes(d.paths, d.mode) for d in datasets]
    images, need = sum(len(s) for s in sizes), sum(sum(s) for s in sizes)
    available = available_memory()
    if available is not None and need * processes * HEADROOM > available:
        return False, (
            f"data.cache: not caching; the {images} decoded images need {_gigabytes(need * processes)} "
            f"({processes} process(es)) and {_gigabytes(available)} of RAM is available, so they are read from disk"
        )
    for dataset, dataset_sizes in zip(datasets, sizes):
        dataset.cache = ImageCache.build(dataset.paths, dataset.mode, dataset_sizes)
    return True, f"data.cache: {images} decoded images held in RAM ({_gigabytes(need)} per process)"


def _gigabytes(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e7 else f"{n / 1e6:.2f} MB"
