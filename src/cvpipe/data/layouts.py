"""Reading the three dataset layouts into one list of (image, labels) records per split.

- ``folder``: one folder per class, ``root/<class>/**/*.jpg``; optionally inside
  ``train/ val/ test/`` folders (``valid``, ``validation`` and ``testing`` also accepted).
- ``labelfile``: an image folder plus a label file at the root: ``name label`` lines (space or
  comma separated, ``#`` comments) or a CSV with or without a header. Several labels on a
  line make a multi-label sample; a CSV whose label columns are all 0/1 under a header
  (``file,cat,dog``) is read as multi-hot with the header as the class names; a header that
  names one label column among others (``file,label,source``) keeps only that column. Label files
  named ``train``/``val``/``test`` (``.txt`` or ``.csv``) give the splits.
- ``pertxt``: one label ``.txt`` per image, beside it or in a ``labels/`` folder mirroring
  ``images/``; it holds a class (``3`` or ``cat``), several (``0 2``, ``cat dog``), or a
  multi-hot vector (``1 0 1``). ``images/train``, ``images/val``... give the splits.

The readers only list and parse; class indices, splitting and image checks happen in
:mod:`cvpipe.data.datasets`. A record that cannot be used (an image listed but missing, an
image without its label file) is returned in ``skipped`` with the reason, never dropped
silently.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterator, Optional

from cvpipe.data.image_io import IMAGE_EXTENSIONS, is_image_file
from cvpipe.errors import DataError
from cvpipe.utils import natural_key

LAYOUTS = ("folder", "labelfile", "pertxt")
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
NAMES_FILES = ("classes.txt", "names.txt", "class_names.txt", "classes.names", "obj.names")
LABEL_SUFFIXES = (".txt", ".csv")
LABEL_COLUMNS = ("label", "labels", "class", "classes", "category", "tag", "tags", "target")  # header names
# A space-separated line whose file name itself holds spaces ("IMG 01.jpg cat"): the name runs
# up to the first image extension that is followed by whitespace or the end of the line.
_SPACED_NAME = re.compile(
    r"^(.*?\s.*?(?:%s))(?:\s+(.*))?$" % "|".join(re.escape(e) for e in IMAGE_EXTENSIONS), re.IGNORECASE
)


@dataclass
class Record:
    """One image and its labels exactly as written (class names, ids, or 0/1 multi-hot)."""

    path: Path
    labels: tuple[str, ...]
    where: str  # the file (and line) the labels came from, for error messages


@dataclass
class Listing:
    layout: str
    splits: dict[str, list[Record]]  # "train"/"val"/"test", or "all" when to be split
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[str] = field(default_factory=list)
    header_names: Optional[list[str]] = None  # class names from a multi-hot CSV header


def iter_images(folder: Path) -> Iterator[Path]:
    """Image files under ``folder`` (recursive, symlinks followed, hidden entries skipped).

    Yields in natural order of the relative path, folder by folder, lazily. A symlink to a
    folder already listed, or to one that contains ``folder`` (a loop), is not followed.
    """
    top = os.path.realpath(folder)
    visited: set[str] = set()
    for current, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(current)
        if real in visited or (real != top and os.path.commonpath([real, top]) == real):
            dirs[:] = []
            continue
        visited.add(real)
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=natural_key)
        for name in sorted(files, key=natural_key):
            if not name.startswith(".") and is_image_file(name):
                yield Path(current) / name


def list_images(folder: Path) -> list[Path]:
    return list(iter_images(folder))


def split_folders(folder: Path) -> dict[str, Path]:
    """``{"train": .., "val": .., "test": ..}`` for split subfolders of ``folder``; {} if no train/."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for child in sorted(folder.iterdir(), key=lambda p: natural_key(p.name)):
        split = SPLIT_ALIASES.get(child.name.lower())
        if split and child.is_dir():
            if split in found:
                raise DataError(f"{folder}: both {found[split].name}/ and {child.name}/ look like the {split} split; keep one")
            found[split] = child
    return found if "train" in found else {}


# --------------------------------------------------------------------------- detection


def detect_layout(root: Path, cfg) -> str:
    """Pick ``folder``, ``labelfile`` or ``pertxt`` from what is in ``root``."""
    if cfg.labels:
        target = root / cfg.labels
        if target.is_file():
            return "labelfile"
        if target.is_dir():
            return "pertxt"
        raise DataError(f"data.labels {cfg.labels}: not found under {root}")
    if _label_file_candidates(root, cfg):
        return "labelfile"
    image_dir, label_dir = _pertxt_dirs(root, cfg)
    for image in islice(iter_images(image_dir), 50):
        if _label_path(image, image_dir, label_dir).is_file():
            return "pertxt"
    base = split_folders(root).get("train", root)
    if any(child.is_dir() and next(iter_images(child), None) for child in base.iterdir() if not child.name.startswith(".")):
        return "folder"
    raise DataError(
        f"data.root {root}: no images found in a known layout; expected class folders "
        "(root/<class>/*.jpg), a label file (root/labels.txt with 'name label' lines) or a .txt "
        "label beside each image; set data.layout to say which"
    )


# --------------------------------------------------------------------------- folder


def read_folder(root: Path, cfg) -> Listing:
    listing = Listing("folder", {})
    folders = split_folders(root) or {"all": root}
    if "all" in folders:
        orphans = sorted(c.name for c in root.iterdir() if c.is_dir() and c.name.lower() in SPLIT_ALIASES)
        if orphans:
            raise DataError(
                f"data.root {root}: has {', '.join(orphans)}/ but no train/ folder; add train/, "
                "or rename the folder if it is a class"
            )
    for split, base in folders.items():
        records = []
        loose = 0
        empty = []
        for child in sorted(base.iterdir(), key=lambda p: natural_key(p.name)):
            if child.name.startswith("."):
                continue
            if child.is_dir():
                found = [Record(p, (child.name,), str(child)) for p in iter_images(child)]
                records += found
                empty += [] if found else [child.name]
            elif is_image_file(child):
                loose += 1
        if loose:
            listing.warnings.append(f"{base}: {loose} image(s) not inside a class folder were ignored")
        if empty:  # a class with no images is no class: say so rather than train without it
            listing.warnings.append(f"{base}: folder(s) {', '.join(empty)} hold no images and are not classes")
        listing.splits[split] = records
    if "all" not in folders:
        extra = [c.name for c in root.iterdir() if c.is_dir() and c.name.lower() not in SPLIT_ALIASES and not c.name.startswith(".")]
        if extra:
            listing.warnings.append(f"{root}: folders {', '.join(sorted(extra))} are not train/val/test and were ignored")
    return listing


# --------------------------------------------------------------------------- labelfile


def read_labelfile(root: Path, cfg) -> Listing:
    image_dir = _image_dir(root, cfg)
    listing = Listing("labelfile", {})
    files = _label_files(root, cfg)
    header_names = None
    for split, label_file in files.items():
        rows = _read_rows(label_file)
        width = None  # the header's column count: a row with more cells is malformed
        if rows and _is_header(rows[0][1], image_dir):
            header, rows = rows[0][1], rows[1:]
            if label_file.suffix.lower() == ".csv":  # a .txt header may head space-separated label lists
                width, columns = len(header), ", ".join(header)
                too_long = {lineno: len(cells) for lineno, cells in rows if len(cells) > width}
            fitting = [r for lineno, r in rows if width is None or lineno not in too_long]
            if len(header) > 2 and fitting and all(len(r) == len(header) and set(r[1:]) <= {"0", "1"} for r in fitting):
                names = [h.strip() for h in header[1:]]
                if header_names is not None and names != header_names:
                    raise DataError(f"{label_file}: its header columns differ from the other label files'")
                header_names = names
            else:
                rows = _only_label_column(header, rows)
        records = listing.splits.setdefault(split, [])
        is_csv = label_file.suffix.lower() == ".csv"
        seen: dict[str, int] = {}
        for lineno, cells in rows:
            where = f"{label_file.name} line {lineno}"
            name = cells[0]
            if "\\" in name and not (image_dir / name).is_file():
                name = name.replace("\\", "/")  # written on Windows: sub\img.jpg
            path = _inside(image_dir, name)
            if path is None:
                listing.skipped.append((name, f"{where}: the path leaves the image folder {image_dir}"))
                continue
            if width is not None and lineno in too_long:
                listing.skipped.append((str(path), (
                    f"{where}: {too_long[lineno]} fields but the header has {width} ({columns}); "
                    "separate several labels with ';' inside one field")))
                continue
            if str(path) in seen:
                listing.skipped.append((str(path), f"{where}: listed again (first on line {seen[str(path)]})"))
                continue
            seen[str(path)] = lineno
            if not path.is_file():
                listing.skipped.append((str(path), f"{where}: listed but no such file"))
                continue
            records.append(Record(path, _split_labels(cells[1:], cfg.multi_label, csv_fields=is_csv), where))
        if rows and not records:
            _suggest_image_folder(root, image_dir, label_file, rows[0][1][0])
    listing.header_names = header_names
    return listing


def _suggest_image_folder(root: Path, image_dir: Path, label_file: Path, listed: str) -> None:
    """None of ``label_file``'s images is in ``image_dir``: if the first one lives in another
    folder under ``root``, raise a DataError naming the data.images setting that finds them."""
    relative = Path(listed.replace("\\", "/"))
    match = next((p for p in root.rglob(relative.name) if p.is_file() and p.match(str(relative))), None)
    if match is None:
        return
    folder = match.parents[len(relative.parts) - 1]
    if folder.resolve() == image_dir.resolve():
        return
    raise DataError(
        f"{label_file}: none of its images is in {image_dir}, but {listed} is in {folder}; "
        f"set data.images={folder.relative_to(root).as_posix()}"
    )


def _only_label_column(header: list[str], rows: list[tuple[int, list[str]]]) -> list[tuple[int, list[str]]]:
    """With a header naming one label column among others (``file,label,source``), keep the file
    and that column: the other columns (sources, notes, sizes) are not classes."""
    columns = [i for i, h in enumerate(header) if i > 0 and h.strip().lower() in LABEL_COLUMNS]
    if len(header) <= 2 or len(columns) != 1:
        return rows
    col = columns[0]
    return [(lineno, [cells[0], *cells[col : col + 1]]) for lineno, cells in rows]


def _label_files(root: Path, cfg) -> dict[str, Path]:
    if cfg.labels:
        path = root / cfg.labels
        if not path.is_file():
            raise DataError(f"data.labels {cfg.labels}: no such file under {root}")
        return {"all": path}
    candidates = _label_file_candidates(root, cfg)
    if not candidates:
        raise DataError(f"data.root {root}: no label file ('name label' lines in a .txt or .csv) found; set data.labels")
    by_split = {SPLIT_ALIASES[p.stem.lower()]: p for p in candidates if p.stem.lower() in SPLIT_ALIASES}
    if by_split:
        if "train" not in by_split:
            raise DataError(f"{root}: label files for {', '.join(by_split)} but none for train (train.txt or train.csv)")
        return by_split
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise DataError(f"{root}: several label files ({names}); set data.labels to the one to use")
    return {"all": candidates[0]}


def _label_file_candidates(root: Path, cfg) -> list[Path]:
    image_dir = _image_dir(root, cfg)
    skip = {n.lower() for n in NAMES_FILES} | ({Path(cfg.names).name.lower()} if cfg.names else set())
    found = []
    for path in sorted(root.iterdir(), key=lambda p: natural_key(p.name)):
        if path.suffix.lower() in LABEL_SUFFIXES and path.name.lower() not in skip and path.is_file():
            if any(_looks_like_image_name(cells[0], image_dir) for _, cells in _read_rows(path, limit=5)):
                found.append(path)
    return found


def _read_rows(path: Path, limit: Optional[int] = None) -> list[tuple[int, list[str]]]:
    """Non-empty, non-comment rows as (line number, cells); CSV via the csv module."""
    rows: list[tuple[int, list[str]]] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            if path.suffix.lower() == ".csv":
                reader = csv.reader(f)
                for row in reader:
                    cells = [c.strip() for c in row]
                    if any(cells) and not cells[0].startswith("#"):
                        rows.append((reader.line_num, cells))
                    if limit and len(rows) >= limit:
                        break
            else:
                for lineno, line in enumerate(f, 1):
                    text = line.strip()
                    if not text or text.startswith("#"):
                        continue
                    cells = [c.strip() for c in text.split(",")] if "," in text else _split_spaced(text)
                    rows.append((lineno, cells))
                    if limit and len(rows) >= limit:
                        break
    except UnicodeDecodeError:
        if limit:
            return []  # a binary file that happens to end in .txt: not a label file
        raise DataError(f"label file {path}: not UTF-8 text") from None
    except OSError as e:
        raise DataError(f"label file {path}: cannot be read ({e.strerror})") from None
    return rows


def _split_spaced(text: str) -> list[str]:
    """Whitespace-separated cells, keeping a leading image file name with spaces in one cell."""
    cells = text.split()
    match = None if is_image_file(cells[0]) else _SPACED_NAME.match(text)
    if match:
        return [match.group(1), *(match.group(2) or "").split()]
    return cells


def _is_header(cells: list[str], image_dir: Path) -> bool:
    return not _looks_like_image_name(cells[0], image_dir)


def _looks_like_image_name(cell: str, image_dir: Path) -> bool:
    return is_image_file(cell) or (image_dir / cell).is_file()


def _split_labels(cells: list[str], multi_label: Optional[bool], csv_fields: bool = False) -> tuple[str, ...]:
    """Label cells -> label tokens. ``;`` and ``|`` always separate labels; spaces do unless
    the dataset is declared single-label, or the cells are CSV fields holding words: a CSV class
    may be named ``coffee cup`` (several labels in one field are ``;``-separated), while class
    ids and multi-hot vectors such as ``0 2`` and ``1 0 1`` still split. The rule does not
    depend on whether the data is declared multi-label, so evaluation (which declares it as the
    model was trained) reads the labels exactly as training did."""
    tokens: list[str] = []
    for cell in cells:
        spaces_split = multi_label is not False and (not csv_fields or all(t.isdigit() for t in cell.split()))
        pattern = r"[;|\s]+" if spaces_split else r"[;|]"
        tokens += [t for t in re.split(pattern, cell) if t.strip()]
    return tuple(t.strip() for t in tokens)


# --------------------------------------------------------------------------- pertxt


def read_pertxt(root: Path, cfg) -> Listing:
    image_dir, label_dir = _pertxt_dirs(root, cfg)
    listing = Listing("pertxt", {})
    image_splits = split_folders(image_dir)
    pairs = {s: (d, label_dir / d.name) for s, d in image_splits.items()} if image_splits else {"all": (image_dir, label_dir)}
    for split, (images, labels) in pairs.items():
        records = listing.splits.setdefault(split, [])
        for image in iter_images(images):
            label_path = _label_path(image, images, labels)
            if not label_path.is_file():
                listing.skipped.append((str(image), f"no label file {label_path}"))
                continue
            rows = _read_rows(label_path)
            for lineno, cells in rows[:1]:
                if _is_box_row(cells):
                    raise DataError(
                        f"{label_path} line {lineno}: '{' '.join(cells)}' is a YOLO detection label (class x y w h), "
                        "not image classes; classification needs classes per image (`cvpipe check-detection` reads YOLO datasets)"
                    )
            tokens = tuple(t for _, cells in rows for cell in cells for t in _split_labels([cell], cfg.multi_label))
            records.append(Record(image, tokens, str(label_path)))
    return listing


def _is_box_row(cells: list[str]) -> bool:
    """A class id followed by at least four coordinates, some fractional: ``0 0.5 0.5 0.2 0.3``."""
    if len(cells) < 5 or not cells[0].isdigit():
        return False
    try:
        [float(c) for c in cells[1:]]
    except ValueError:
        return False
    return any("." in c for c in cells[1:])


def _pertxt_dirs(root: Path, cfg) -> tuple[Path, Path]:
    image_dir = _image_dir(root, cfg)
    if cfg.labels and (root / cfg.labels).is_dir():
        return image_dir, root / cfg.labels
    if (root / "labels").is_dir():
        return image_dir, root / "labels"
    return image_dir, image_dir


def _label_path(image: Path, image_dir: Path, label_dir: Path) -> Path:
    return (label_dir / image.relative_to(image_dir)).with_suffix(".txt")


# --------------------------------------------------------------------------- shared


def _image_dir(root: Path, cfg) -> Path:
    if cfg.images:
        folder = root / cfg.images
        if not folder.is_dir():
            raise DataError(f"data.images {cfg.images}: no such folder under {root}")
        return folder
    return root / "images" if (root / "images").is_dir() else root


def _inside(folder: Path, name: str) -> Optional[Path]:
    """``folder/name`` if it stays inside ``folder`` (no ``..``, no absolute path), else None."""
    joined = os.path.normpath(os.path.join(folder, name))
    base = os.path.normpath(folder)
    if os.path.isabs(name) or os.path.commonpath([joined, base]) != base:
        return None
    return Path(joined)


def read_names(root: Path, cfg) -> Optional[list[str]]:
    """Class names from ``data.names`` or a ``classes.txt``-style file at the root, in file order."""
    if cfg.names:
        path = root / cfg.names
        if not path.is_file():
            raise DataError(f"data.names {cfg.names}: no such file under {root}")
    else:
        path = next((root / n for n in NAMES_FILES if (root / n).is_file()), None)
        if path is None:
            return None
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"names file {path}: cannot be read ({e})") from None
    names = [n for n in names if n and not n.startswith("#")]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"names file {path}: class {dup!r} is listed twice")
    if not names:
        raise DataError(f"names file {path}: no class names in it")
    return names


READERS = {"folder": read_folder, "labelfile": read_labelfile, "pertxt": read_pertxt}
