"""Augmentation preview: what the network will actually be shown, before training on it.

One row per training image: the image as stored, several independent draws of the
configured training augmentation, and the deterministic eval view, all after the same
resize/crop/normalise steps the loaders use (normalisation undone for display).
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import torch
from torchvision.transforms import v2

from cvpipe.config import Config
from cvpipe.data.datasets import ImageDataset, build_splits
from cvpipe.data.image_io import read_image
from cvpipe.data.layouts import natural_key
from cvpipe.data.transforms import build_eval_transform, build_train_transform, denormalize, make_preprocess, resolve_mean_std
from cvpipe.errors import ConfigError, DataError
from cvpipe.viz import save_image_grid

DISPLAY_MAX_SIDE = 256  # originals larger than this are shrunk for the figure only


def preview_augmentations(cfg: Config, out_path: Union[str, Path], n: int = 8, draws: int = 4) -> Path:
    """Write a PNG grid: ``n`` training images x (original, ``draws`` augmented views, eval view).

    Images are taken round-robin over the classes, so the rows show as many classes as
    ``n`` allows; the choice and the draws are seeded by ``train.seed``. Unreadable files
    are passed over (``cvpipe dataset-report`` lists them).

    ``out_path`` may be an existing folder: the grid is then written in it as
    ``augmentations.png``; a name without extension gets ``.png``; another extension is refused
    (ConfigError), so a config file or a photo is never overwritten with the grid.

    Returns:
        The path of the PNG written.
    """
    if n < 1 or draws < 1:
        raise ValueError("preview needs n >= 1 images and draws >= 1")
    out_path = Path(out_path)
    if out_path.is_dir():
        out_path = out_path / "augmentations.png"
    elif not out_path.suffix:  # `--out grid` is meant as grid.png, a file one can open
        out_path = out_path.with_name(out_path.name + ".png")
    elif out_path.suffix.lower() != ".png":  # `--out photos.yaml` must not overwrite the config with a PNG
        raise ConfigError(f"preview output {out_path}: the preview is a PNG; give a name ending in .png or a folder")
    aug, in_chans = cfg.data.augment, cfg.model.in_chans
    splits = build_splits(cfg.data, in_chans, check=False)
    dataset = splits.train
    mean, std = resolve_mean_std(aug, dataset, in_chans)
    preprocess = make_preprocess(aug, in_chans, mean, std)
    train_view, eval_view = build_train_transform(aug, preprocess), build_eval_transform(preprocess)

    cells, titles = [], []
    generator = torch.Generator().manual_seed(cfg.train.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        shown = 0
        for index in _round_robin(dataset, generator):
            try:
                image = read_image(dataset.paths[index], dataset.mode)
            except DataError:
                continue
            cells.append(_for_display(image))
            titles.append(f"{_label(dataset, index)}\n{image.shape[2]}x{image.shape[1]} px")
            for draw in range(draws):
                cells.append(denormalize(train_view(image), preprocess))
                titles.append(f"train {draw + 1}")
            cells.append(denormalize(eval_view(image), preprocess))
            titles.append("eval")
            shown += 1
            if shown == n:
                break
    if not cells:
        raise DataError(f"{splits.root}: none of the training images could be read; run `cvpipe dataset-report` to see why")
    height, width = preprocess["image_size"]
    name = "digits" if cfg.data.root == "digits" else splits.root.name
    suptitle = f"{name}: original | {draws} training draws | eval view ({width}x{height})"
    return save_image_grid(cells, out_path, titles=titles, ncols=draws + 2, cell_inches=1.5, suptitle=suptitle)


def _round_robin(dataset: ImageDataset, generator: torch.Generator):
    """Indices alternating over the classes (natural order), random within each class."""
    if dataset.multi_label:
        order = torch.randperm(len(dataset), generator=generator).tolist()
        yield from order
        return
    by_class = []
    for c in sorted(range(len(dataset.classes)), key=lambda i: natural_key(dataset.classes[i])):
        members = (dataset.targets == c).nonzero().flatten()
        by_class.append(members[torch.randperm(len(members), generator=generator)].tolist())
    for rank in range(max((len(m) for m in by_class), default=0)):
        for members in by_class:
            if rank < len(members):
                yield members[rank]


def _label(dataset: ImageDataset, index: int) -> str:
    target = dataset.targets[index]
    if dataset.multi_label:
        names = [dataset.classes[i] for i in target.nonzero().flatten().tolist()]
        text = ", ".join(names) if names else "(no label)"
    else:
        text = dataset.classes[int(target)]
    return text if len(text) <= 24 else text[:23] + "…"


def _for_display(image: torch.Tensor) -> torch.Tensor:
    height, width = image.shape[-2:]
    if max(height, width) <= DISPLAY_MAX_SIDE:
        return image
    return v2.functional.resize(image, DISPLAY_MAX_SIDE - 1, max_size=DISPLAY_MAX_SIDE, antialias=True)
