"""Classification datasets: any of the three layouts -> train/val/test :class:`ImageDataset`.

:func:`build_splits` is the one entry point::

    splits = build_splits(cfg.data, in_chans=cfg.model.in_chans)
    splits.train[0]        # (uint8 tensor (C, H, W) or transformed, target)
    splits.classes         # natural-sorted: "2" before "10"
    splits.write_report(run_dir)   # skipped_files.csv: every file left out, with the reason

What it guarantees:

- **Class order** is natural-sorted over the classes of *all* splits together (or taken from a
  names file, in its order), so a class missing from one split cannot shift the others.
- **Splitting**: when the data has no ``val/`` folder (or ``val`` label file), a seeded split
  takes ``data.val_split`` (and ``data.test_split``) of every class separately, so each class
  keeps its share; multi-label data is split by iterative stratification, so every label
  keeps its share as nearly as the label combinations allow. The split is made from the
  file listing *before* images are checked, so fixing a broken file later does not move
  others between splits.
- **Checking**: every image is decoded once, from a thread pool, before training. A file that
  fails is left out and listed with the reason (``data.strict=true`` fails instead). Nothing
  is repaired silently.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from cvpipe.data.digits import digits_root
from cvpipe.data.image_io import TRUNCATED_ALLOWED_MESSAGE, check_image, read_image, truncated_images_allowed
from cvpipe.data.layouts import LAYOUTS, READERS, Listing, Record, detect_layout, natural_key, read_names
from cvpipe.errors import ConfigError, DataError
from cvpipe.utils import can_draw_bar, file_threads

PathLike = Union[str, Path]
SPLITS = ("train", "val", "test")


class ImageDataset(Dataset):
    """Images and their targets, read on access.

    ``dataset[i]`` -> ``(image, target)``: ``image`` is ``transform(read_image(path, mode))``
    (a uint8 tensor (C, H, W) when ``transform`` is None); ``target`` is an ``int64`` class
    index, or for multi-label a ``float32`` multi-hot vector (num_classes,).

    Args:
        paths: image files.
        targets: (N,) class indices, or (N, num_classes) 0/1 rows when ``multi_label``.
        classes: class names, index order.
        multi_label: whether targets are multi-hot.
        transform: callable on a uint8 (C, H, W) tensor; settable later.
        mode: ``"RGB"`` or ``"L"`` (grey), how images are decoded.
    """

    def __init__(
        self,
        paths: Sequence[PathLike],
        targets,
        classes: Sequence[str],
        *,
        multi_label: bool = False,
        transform: Optional[Callable] = None,
        mode: str = "RGB",
    ):
        self.paths = [Path(p) for p in paths]
        self.classes = list(classes)
        self.multi_label = bool(multi_label)
        dtype = torch.float32 if self.multi_label else torch.int64
        width = len(self.classes) if self.multi_label and not len(self.paths) else -1  # -1 is ambiguous for 0 rows
        self.targets = torch.as_tensor(targets, dtype=dtype).reshape(len(self.paths), width if self.multi_label else 1)
        if not self.multi_label:
            self.targets = self.targets.reshape(-1)
        elif self.targets.shape[1] != len(self.classes) and len(self.paths):
            raise ValueError(f"multi-hot targets have {self.targets.shape[1]} columns for {len(self.classes)} classes")
        self.transform = transform
        self.mode = mode
        self.cache = None  # an ImageCache of every image, when data.cache is on

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        image = self.cache[index] if self.cache is not None else read_image(self.paths[index], self.mode)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]

    @property
    def samples(self) -> list[tuple[Path, Union[int, list[float]]]]:
        """(path, target) pairs, targets as Python values."""
        return list(zip(self.paths, self.targets.tolist()))

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def subset(self, indices: Sequence[int]) -> "ImageDataset":
        """A dataset over ``indices`` with the same classes, transform and mode (not cached)."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return ImageDataset(
            [self.paths[i] for i in index.tolist()],
            self.targets[index],
            self.classes,
            multi_label=self.multi_label,
            transform=self.transform,
            mode=self.mode,
        )

    def __repr__(self) -> str:
        kind = "multi-label" if self.multi_label else "single-label"
        return f"ImageDataset({len(self)} images, {len(self.classes)} classes, {kind}, mode={self.mode})"


@dataclass
class Splits:
    """The datasets of one configuration, plus what was left out and why."""

    train: ImageDataset
    val: Optional[ImageDataset]
    test: Optional[ImageDataset]
    classes: list[str]
    multi_label: bool
    root: Path
    layout: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[str] = field(default_factory=list)

    REPORT_NAME = "skipped_files.csv"

    def write_report(self, path: PathLike) -> Path:
        """Write the skipped files as CSV (``path,reason``) to ``path``: a ``.csv`` file, or a
        folder (the run folder) that receives ``skipped_files.csv``. Returns the file written."""
        path = Path(path)
        if path.suffix.lower() != ".csv":
            path = path / self.REPORT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "reason"])
            writer.writerows(self.skipped)
        return path

    def fingerprint(self) -> dict:
        """What a resumed run compares: ``{"train": n, "val": n, "digest": hex}``; the digest
        covers every train/val file (relative to the root, so a moved dataset matches) and its
        target."""
        digest = hashlib.sha256()
        sizes = {}
        for name, dataset in (("train", self.train), ("val", self.val)):
            dataset = dataset if dataset is not None else ImageDataset([], [], self.classes, multi_label=self.multi_label)
            sizes[name] = len(dataset)
            for path, target in zip(dataset.paths, dataset.targets.tolist()):
                relative = path.relative_to(self.root) if path.is_relative_to(self.root) else path
                digest.update(f"{name}\t{relative.as_posix()}\t{target}\n".encode())
        return {**sizes, "digest": digest.hexdigest()}

    def change_since(self, before: Optional[dict]) -> Optional[str]:
        """How the train/val data differs from an earlier :meth:`fingerprint` ``before`` (a
        checkpoint's), as ``train 24 -> 30, val 6 -> 6 images, or ...``; None when it is the same
        or there is no earlier fingerprint to compare with."""
        if not before or "digest" not in before:
            return None
        now = self.fingerprint()
        if now["digest"] == before["digest"]:
            return None
        return (f"train {before.get('train')} -> {now['train']}, val {before.get('val')} -> {now['val']} images, "
                "or the same counts with other files or labels")

    def describe(self) -> str:
        """One line for logs: where the data is and how many images each split has."""
        parts = (("train", self.train), ("val", self.val), ("test", self.test))
        sizes = ", ".join(f"{len(ds)} {name}" for name, ds in parts if ds is not None)
        kind = "multi-label" if self.multi_label else "single-label"
        left_out = f", {len(self.skipped)} file(s) skipped" if self.skipped else ""
        return f"{self.root} ({self.layout} layout, {len(self.classes)} classes, {kind}): {sizes} images{left_out}"


def resolve_root(root: str) -> Path:
    """``"digits"`` -> the embedded digits folder; anything else must be an existing folder."""
    if root == "digits":
        return digits_root()
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"data.root {root}: no such folder (use a path, or 'digits' for the built-in digits)")
    return path


def image_mode(in_chans: int) -> str:
    if in_chans == 1:
        return "L"
    if in_chans == 3:
        return "RGB"
    raise ConfigError(f"model.in_chans {in_chans}: images are read as grey (1) or RGB (3)")


def build_splits(data_cfg, in_chans: int = 3, check: bool = True) -> Splits:
    """Find, label, split and check the images that ``data_cfg`` (a DataConfig) describes.

    Args:
        data_cfg: the ``data`` section of the config.
        in_chans: 1 reads images as grey, 3 as RGB.
        check: decode every image once and leave out those that fail (recommended; False
            trusts the files, e.g. for a quick preview).

    Raises:
        DataError: no usable images, an inconsistent label set, or (``strict``) any file that
            had to be left out.
    """
    check_data_config(data_cfg, in_chans)
    mode = image_mode(in_chans)
    root = resolve_root(data_cfg.root)
    layout = data_cfg.layout
    if layout == "auto":
        layout = detect_layout(root, data_cfg)
    listing = READERS[layout](root, data_cfg)
    skipped = list(listing.skipped)
    if skipped and data_cfg.strict:
        _fail_strict(skipped)

    names = read_names(root, data_cfg)
    encoder = _LabelEncoder(listing, names, data_cfg.multi_label)
    encoded: dict[str, list[tuple[Path, object]]] = {}
    for split, records in listing.splits.items():
        encoded[split] = []
        for record in records:
            target, problem = encoder.encode(record)
            if problem:
                skipped.append((str(record.path), problem))
            else:
                encoded[split].append((record.path, target))
    if len(skipped) > len(listing.skipped) and data_cfg.strict:
        _fail_strict(skipped[len(listing.skipped) :])

    parts = _make_splits(encoded, encoder, data_cfg)
    if check:
        parts, bad = _drop_unreadable(parts, data_cfg.strict)
        skipped += bad
    if not parts["train"]:
        first = f", the first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(f"data.root {root}: no usable training images ({len(skipped)} file(s) skipped{first})")

    def dataset(items):
        if not items:
            return None
        return ImageDataset([p for p, _ in items], [t for _, t in items], encoder.classes, multi_label=encoder.multi_label, mode=mode)

    splits = Splits(
        train=dataset(parts["train"]),
        val=dataset(parts["val"]),
        test=dataset(parts["test"]),
        classes=encoder.classes,
        multi_label=encoder.multi_label,
        root=root,
        layout=layout,
        skipped=skipped,
        warnings=listing.warnings + _coverage_warnings(parts, encoder),
    )
    return splits


# --------------------------------------------------------------------------- labels -> targets


class _LabelEncoder:
    """Decides single- vs multi-label and the class list, then turns records into targets.

    Class names come from a names file (file order) or a multi-hot CSV header; otherwise they
    are the natural-sorted union of every label written in every split. With a names file, an
    integer label that is not itself a name is an index into it (``3`` -> ``names[3]``).
    A multi-hot vector (every labelled record the same length >= 2, only 0/1) maps position i
    to class i; its classes are named ``"0", "1", ...`` unless a names file says otherwise.
    """

    def __init__(self, listing: Listing, names: Optional[list[str]], multi_label: Optional[bool]):
        records = [r for rs in listing.splits.values() for r in rs]
        labelled = [r.labels for r in records if r.labels]
        widths = {len(labels) for labels in labelled}
        self.multi_hot = listing.header_names is not None or (
            len(widths) == 1 and min(widths) >= 2 and all(set(labels) <= {"0", "1"} for labels in labelled)
        )
        has_several = any(len(labels) >= 2 for labels in labelled)
        self.multi_label = bool(multi_label) if multi_label is not None else (self.multi_hot or has_several)
        if multi_label is False and self.multi_hot:
            raise DataError(f"{records[0].where}: labels look multi-hot ({' '.join(records[0].labels)}) but data.multi_label is false")
        if self.multi_hot:
            width = widths.pop() if widths else len(listing.header_names or [])
            self.classes = listing.header_names or names or [str(i) for i in range(width)]
            if len(self.classes) != width:
                raise DataError(f"multi-hot labels have {width} positions but the names file lists {len(self.classes)} classes")
        elif names:
            self.classes = list(names)
        else:
            self.classes = sorted({t for labels in labelled for t in labels}, key=natural_key)
        self.index = {name: i for i, name in enumerate(self.classes)}

    def encode(self, record: Record) -> tuple[object, Optional[str]]:
        """(target, None) or (None, reason): int for single-label, list of 0/1 floats for multi."""
        if self.multi_hot:
            if record.labels and len(record.labels) != len(self.classes):
                return None, f"{record.where}: {len(record.labels)} multi-hot values for {len(self.classes)} classes"
            return [float(t) for t in record.labels] or [0.0] * len(self.classes), None
        indices = []
        for token in record.labels:
            index = self.index.get(token)
            if index is None and token.isdigit() and int(token) < len(self.classes):
                index = int(token)
            if index is None:
                return None, f"{record.where}: label {token!r} is not in the class names"
            indices.append(index)
        if self.multi_label:
            row = [0.0] * len(self.classes)
            for i in indices:
                row[i] = 1.0
            return row, None
        if not indices:
            return None, f"{record.where}: no label"
        if len(indices) > 1:
            return None, f"{record.where}: {len(indices)} labels but data.multi_label is false"
        return indices[0], None


# --------------------------------------------------------------------------- splitting


def check_data_config(cfg, in_chans: int = 3) -> None:
    """ConfigError naming the key for a ``data`` setting that no dataset could satisfy (and
    DataError for a root that is not a folder); reads no files, so it can run before anything
    is created."""
    image_mode(in_chans)
    if cfg.root != "digits":  # the embedded digits are materialised later, on first use
        resolve_root(cfg.root)
    if cfg.layout != "auto" and cfg.layout not in LAYOUTS:
        raise ConfigError(f"data.layout {cfg.layout!r}: use auto, {', '.join(LAYOUTS)}")
    for key in ("val_split", "test_split"):
        value = getattr(cfg, key)
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"data.{key} {value}: must be in [0, 1)")
    if cfg.val_split + cfg.test_split >= 1.0:
        raise ConfigError(f"data.val_split + data.test_split = {cfg.val_split + cfg.test_split}: must be below 1")
    if not 0.0 <= cfg.threshold <= 1.0:
        raise ConfigError(f"data.threshold {cfg.threshold}: a probability in [0, 1]")
    if cfg.workers < 0:
        raise ConfigError(f"data.workers {cfg.workers}: must be >= 0")


def _make_splits(encoded: dict, encoder: _LabelEncoder, cfg) -> dict[str, list]:
    """train/val/test item lists: given splits kept, missing val/test carved from the rest."""
    parts = {name: list(encoded.get(name, [])) for name in SPLITS}
    pool = encoded["all"] if "all" in encoded else parts["train"]
    carve_val = "val" not in encoded
    carve_test = "test" not in encoded
    fractions = (cfg.val_split if carve_val else 0.0, cfg.test_split if carve_test else 0.0)
    if fractions == (0.0, 0.0):
        parts["train"] = pool
        return parts
    if encoder.multi_label:
        label_sets = [torch.as_tensor(t).nonzero().flatten().tolist() for _, t in pool]
        train_idx, val_idx, test_idx = multilabel_stratified_split(label_sets, fractions[0], fractions[1], cfg.split_seed)
    else:
        strata = [t for _, t in pool]
        train_idx, val_idx, test_idx = stratified_split(len(pool), strata, fractions[0], fractions[1], cfg.split_seed)
    parts["train"] = [pool[i] for i in train_idx]
    if carve_val:
        parts["val"] = [pool[i] for i in val_idx]
    if carve_test:
        parts["test"] = [pool[i] for i in test_idx]
    return parts


def stratified_split(
    n: int, strata: Optional[Sequence[int]], val_fraction: float, test_fraction: float, seed: int
) -> tuple[list[int], list[int], list[int]]:
    """Seeded split of ``range(n)`` into (train, val, test) index lists, each sorted.

    With ``strata`` (a class per item) every class is split separately: ``round(n_c * f)``
    of its items go to val (and test), always leaving at least one in train. Without it the
    whole range is one stratum.
    """
    generator = torch.Generator().manual_seed(seed)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(strata[i] if strata is not None else 0, []).append(i)
    train, val, test = [], [], []
    for key in sorted(groups):
        members = groups[key]
        order = [members[j] for j in torch.randperm(len(members), generator=generator).tolist()]
        n_val = round(len(members) * val_fraction)
        n_test = round(len(members) * test_fraction)
        while n_val + n_test >= len(members) and n_val + n_test > 0:
            if n_val >= n_test:
                n_val -= 1
            else:
                n_test -= 1
        val += order[:n_val]
        test += order[n_val : n_val + n_test]
        train += order[n_val + n_test :]
    return sorted(train), sorted(val), sorted(test)


def multilabel_stratified_split(
    label_sets: Sequence[Sequence[int]], val_fraction: float, test_fraction: float, seed: int
) -> tuple[list[int], list[int], list[int]]:
    """Seeded split of multi-label items into (train, val, test) index lists, each sorted, that
    keeps every label's share in every split close to the split's fraction.

    Iterative stratification (Sechidis, Tsoumakas and Vlahavas, ECML-PKDD 2011): each split
    wants ``fraction * count`` items of every label. Labels are served rarest first, since a
    rare label is the easiest to leave out of a split; each item carrying it goes to the split
    that still wants that label most (ties: the split that wants the most items overall, then
    a seeded coin); once no split wants a whole item of the label, among those that want part
    of one, the split that wants the most items. Items without labels fill the splits that want most items. ``label_sets``
    holds the class ids of each item. A split whose fraction is 0 gets nothing.

    The greedy choices are sequential (each depends on the ones before), so this walks the
    items once in Python (100k images with 20 labels: about 0.3 s here).
    """
    rng = random.Random(seed)
    n = len(label_sets)
    fractions = (1.0 - val_fraction - test_fraction, val_fraction, test_fraction)
    active = [k for k, f in enumerate(fractions) if f > 0]
    num_labels = 1 + max((c for labels in label_sets for c in labels), default=-1)
    label_counts = [0] * num_labels
    for labels in label_sets:
        for c in labels:
            label_counts[c] += 1
    wanted_items = [f * n for f in fractions]
    wanted = [[f * count for count in label_counts] for f in fractions]  # wanted[split][label]
    members: list[list[int]] = [[] for _ in range(num_labels)]
    for i in rng.sample(range(n), n):  # a seeded order, so ties between items fall at random
        for c in label_sets[i]:
            members[c].append(i)
    split_of = [-1] * n

    def take(i: int, candidates: list[int]) -> None:
        best = max(wanted_items[k] for k in candidates)
        candidates = [k for k in candidates if wanted_items[k] == best]
        k = candidates[0] if len(candidates) == 1 else rng.choice(candidates)
        split_of[i] = k
        wanted_items[k] -= 1
        for c in label_sets[i]:
            wanted[k][c] -= 1

    remaining = list(label_counts)  # unassigned items per label
    for _ in range(num_labels):
        label = min((c for c in range(num_labels) if remaining[c] > 0), key=remaining.__getitem__, default=None)
        if label is None:
            break
        for i in members[label]:
            if split_of[i] >= 0:
                continue
            most = max(wanted[k][label] for k in active)
            if most >= 1:
                take(i, [k for k in active if wanted[k][label] == most])
            else:  # no split wants a whole item more: any that wants some stays within one item of
                # its share, so the item counts decide (else a label on one image always went to train)
                take(i, [k for k in active if wanted[k][label] > 0])
            for c in label_sets[i]:
                remaining[c] -= 1
    for i in range(n):
        if split_of[i] < 0:  # no labels at all
            take(i, active)
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for i, k in enumerate(split_of):
        parts[k].append(i)
    return parts


def _coverage_warnings(parts: dict, encoder: _LabelEncoder) -> list[str]:
    notes = []
    num = len(encoder.classes)
    for name in SPLITS:
        items = parts[name]
        if not items or num > 1000:
            continue
        present = torch.zeros(num, dtype=torch.bool)
        for _, target in items:
            if encoder.multi_label:
                present |= torch.as_tensor(target) > 0
            else:
                present[target] = True
        missing = [encoder.classes[i] for i in (~present).nonzero().flatten().tolist()]
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            notes.append(f"{name} split has no images of {len(missing)} class(es): {shown}")
    return notes


# --------------------------------------------------------------------------- checking


def _drop_unreadable(parts: dict, strict: bool) -> tuple[dict, list[tuple[str, str]]]:
    paths = sorted({str(p) for items in parts.values() for p, _ in items})
    problems = check_images(paths)
    if problems and strict:
        _fail_strict(sorted(problems.items()))
    kept = {name: [(p, t) for p, t in items if str(p) not in problems] for name, items in parts.items()}
    return kept, sorted(problems.items(), key=lambda item: natural_key(item[0]))


def check_images(paths: Sequence[PathLike], desc: str = "checking images") -> dict[str, str]:
    """Decode every file once (thread pool); ``{path: reason}`` for those that fail.

    Shows a progress bar with an ETA for large folders when on a terminal (rank 0 only).
    """
    if truncated_images_allowed():
        raise DataError(TRUNCATED_ALLOWED_MESSAGE)
    paths = [str(p) for p in paths]
    show = len(paths) >= 500 and os.environ.get("RANK", "0") == "0" and can_draw_bar()
    workers = file_threads()
    problems: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(check_image, paths)
        for path, reason in zip(paths, tqdm(results, total=len(paths), desc=desc, unit="img", disable=not show, leave=False)):
            if reason is not None:
                problems[path] = reason
    return problems


def _fail_strict(skipped: list[tuple[str, str]]) -> None:
    path, reason = skipped[0]
    more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
    raise DataError(f"{path}: {reason}{more}; data.strict is true, so fix or remove it, or set data.strict=false to skip such files")
