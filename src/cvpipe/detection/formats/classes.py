"""Class-list files shared by the formats that store class names outside the labels."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from cvpipe.detection.annotations import Category, read_text


def read_class_file(path: Path) -> Optional[list[Category]]:
    """Categories from a class file, or None if absent.

    One class per line, blank lines and ``#`` comments skipped: ``name`` (id = line number
    among classes, from 1) or, when *every* line starts with an integer, ``id name`` (explicit
    ids, as :func:`write_class_file` writes when the ids are not 1..K; the name may contain
    spaces: ``10 traffic light``). A hand-written list with one name like ``2 wheeler`` among
    plain names therefore stays a list of names.
    """
    if not path.is_file():
        return None
    text = read_text(path, "class list")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    pairs = [line.partition(" ") for line in lines]
    if lines and all(head.lstrip("-").isdigit() and rest.strip() for head, _, rest in pairs):
        return [Category(int(head), rest.strip()) for head, _, rest in pairs]
    return [Category(k + 1, line) for k, line in enumerate(lines)]


def _reads_back_plain(name: str) -> bool:
    """Whether a name alone on a line reads back as itself (not ``id name``, not a comment)."""
    head, _, rest = name.partition(" ")
    return not name.startswith("#") and not (head.lstrip("-").isdigit() and rest.strip())


def write_class_file(path: Path, categories: Sequence[Category]) -> None:
    """Names one per line; ``id name`` lines when the ids are not simply 1..K in order or a
    name would be misread alone (``2 wheeler``, ``#1``)."""
    plain = ([c.id for c in categories] == list(range(1, len(categories) + 1))
             and all(_reads_back_plain(c.name) for c in categories))
    path.write_text("".join(f"{c.name}\n" if plain else f"{c.id} {c.name}\n" for c in categories), encoding="utf-8")


def as_categories(classes) -> Optional[list[Category]]:
    """A class list given as names (ids 1..K) or as :class:`Category` objects."""
    if not classes:
        return None
    return [c if isinstance(c, Category) else Category(i + 1, str(c)) for i, c in enumerate(classes)]
