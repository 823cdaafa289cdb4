"""The notes' custom format: ``JPEGImages/<file>``, ``Annotations/<stem>.txt`` with one
``cls cx cy w h`` line per object in *pixels* (class 0-based), and ``filelist.txt`` listing
the images, one path per line.

The label of ``JPEGImages/a/b.jpg`` is ``Annotations/a/b.txt`` (the notes replace
``JPEGImages`` by ``Annotations`` and the extension by ``.txt``). Paths in the file lists are
relative to the dataset folder (``JPEGImages/b.jpg``); absolute paths and ``..`` are refused.
Splits are ``filelist_<split>.txt``; without any list every image in ``JPEGImages/`` is read.
Class names come from an optional ``classes.txt`` (else ``"0".."K-1"``); ignored objects
live in ``Annotations_ignore/`` (see :mod:`.textlabels`). Image sizes are not needed by the
format but are read from the image headers when the image exists, for checks and for YOLO.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from cvpipe.detection.annotations import (
    DatasetBuilder,
    DetectionDataset,
    ImageInfo,
    Issue,
    NoAnnotationFiles,
    convert_boxes,
    first_duplicate,
    list_images,
    progress,
    read_image_size,
    read_text,
    relative_posix,
    safe_relpath,
)
from cvpipe.detection.formats.classes import as_categories, read_class_file, write_class_file
from cvpipe.detection.formats.textlabels import (
    add_label_objects,
    default_categories,
    ignore_path,
    parse_label_file,
    write_label_files,
)
from cvpipe.errors import DataError

DECIMALS = 10


def _file_lists(root: Path) -> list[tuple[str, Path]]:
    lists = []
    if (root / "filelist.txt").is_file():
        lists.append(("", root / "filelist.txt"))
    for p in sorted(root.glob("filelist_*.txt")):
        lists.append((p.stem[len("filelist_"):], p))
    return lists


def read_txt(path, image_root=None, classes=None) -> DetectionDataset:
    """Read the notes' txt dataset folder. ``classes`` gives names (else ``classes.txt``)."""
    root = Path(path)
    ann_dir, image_dir = root / "Annotations", root / "JPEGImages"
    if not ann_dir.is_dir():
        raise NoAnnotationFiles(f"{root}: no Annotations/ folder (not a txt detection dataset)")
    if not any(next(d.rglob("*.txt"), None) for d in (ann_dir, root / "Annotations_ignore") if d.is_dir()):
        raise NoAnnotationFiles(f"{root}: no Annotations/*.txt label files (the txt format has one per image)")
    categories = as_categories(classes) or read_class_file(root / "classes.txt")
    b = DatasetBuilder(categories or [], format="txt")

    entries: list[tuple[str, str]] = []  # (split, image path relative to root)
    lists = _file_lists(root)
    for split, list_path in lists:
        for n, line in enumerate(read_text(list_path, "image list").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append((split, safe_relpath(line.strip().removeprefix("./"), "image path")))
            except DataError as e:
                b.issue(list_path.name, f"line {n}: {e}; skipped")
    if not lists:
        entries = [("", relative_posix(p, root)) for p in list_images(image_dir)]

    parsed, used = [], set()
    for split, rel_image in progress(entries, "reading txt"):
        parts = PurePosixPath(rel_image).parts
        if "JPEGImages" not in parts:
            b.issue(rel_image, "image path is not under JPEGImages/; skipped")
            continue
        k = len(parts) - 1 - parts[::-1].index("JPEGImages")
        file_name = PurePosixPath(*parts[k + 1:]).as_posix()
        label = root / PurePosixPath(*parts[:k], "Annotations", *parts[k + 1:]).with_suffix(".txt")
        rel_label = relative_posix(label, root)
        image_path = root / rel_image
        width = height = 0
        if image_path.is_file():
            try:
                width, height = read_image_size(image_path)
            except DataError as e:
                b.issue(rel_image, str(e))
        else:
            b.issue(rel_label, f"image {rel_image} is missing (annotation without image)")
        info = ImageInfo(file_name, width, height, 0, split, image_path, rel_label)
        found = []
        for p, ignored in ((label, False), (ignore_path(label, "Annotations"), True)):
            if p.is_file():
                used.add(p.resolve())
                found.append((relative_posix(p, root), ignored, *parse_label_file(p, relative_posix(p, root), b)))
        parsed.append((info, found))

    if not b.categories:
        top = max((int(c.max()) for _, found in parsed for *_, c, _v in found if len(c)), default=-1)
        b.categories = default_categories(top + 1)
    b.numbered_ids = True
    for n, (info, found) in enumerate(parsed):
        info.id = n + 1
        image = b.add_image(info)
        for rel, ignored, lines, cls, values in found:
            add_label_objects(b, image, rel, lines, cls, convert_boxes(values, "cxcywh", "xyxy"), ignored)
    for folder in (ann_dir, root / "Annotations_ignore"):
        for p in sorted(folder.rglob("*.txt")) if folder.is_dir() else []:
            if p.resolve() not in used:
                b.issue(relative_posix(p, root), "label file without image in the file lists (annotation without image)")
    return b.build()


def write_txt(ds: DetectionDataset, dst, copy_image) -> list[Issue]:
    """Write ``JPEGImages/``, ``Annotations/``, ``Annotations_ignore/`` (where needed), one
    ``filelist[_<split>].txt`` per split and ``classes.txt``."""
    dst = Path(dst)
    issues: list[Issue] = []
    stems = [PurePosixPath(im.file_name).with_suffix("").as_posix() for im in ds.images]
    dup = first_duplicate(stems)
    if dup is not None:
        raise DataError(f"two images would share Annotations/{dup}.txt (all splits share one folder); rename one of them")
    rows = convert_boxes(ds.boxes, "xyxy", "cxcywh")
    lists: dict[str, list[str]] = {}
    for i, (im, objs) in enumerate(progress(list(zip(ds.images, ds.objects_by_image())), "writing txt")):
        issues.extend(copy_image(im, dst / "JPEGImages" / im.file_name))
        label = dst / "Annotations" / f"{stems[i]}.txt"
        write_label_files(ds, objs, rows[objs], label, "Annotations", DECIMALS)
        lists.setdefault(im.split, []).append(f"JPEGImages/{im.file_name}\n")
    for split, lines in lists.items():
        name = f"filelist_{split}.txt" if split else "filelist.txt"
        (dst / name).write_text("".join(lines), encoding="utf-8")
    write_class_file(dst / "classes.txt", ds.categories)
    return issues
