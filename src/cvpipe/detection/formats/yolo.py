"""YOLO (Ultralytics layout): ``images/<split>/x.jpg`` with ``labels/<split>/x.txt`` holding
``cls cx cy w h`` per line, normalised by the image width and height, ``cls`` 0-based.

Classes come from a data YAML (``names`` as a list or ``{index: name}``; ``train``/``val``/
``test`` give image folders or ``.txt`` lists of images, relative to ``path`` or the YAML's
folder, and refused when they lead outside that folder) or from ``classes.txt``. cvpipe adds
``category_ids`` to the YAML so COCO ids survive a trip through YOLO (Ultralytics ignores the
key); without it index ``k`` becomes id ``k + 1``.
Splits are written under Ultralytics' keys (``train2017`` under ``train``, ``valid`` under
``val``) with their names in ``split_names``, which is read back the same way.

The label of an image is found as Ultralytics finds it: the last ``/images/`` in its path
becomes ``/labels/`` and the extension ``.txt``. Image sizes are read from the file header
(Pillow opens lazily, no decoding) with the EXIF orientation applied, so labels refer to the
upright picture as in Ultralytics. Ignored objects live in ``labels_ignore/`` (see
:mod:`.textlabels`). Segmentation labels (``cls x1 y1 x2 y2 x3 y3 ...``) are read as the box
around their points, as Ultralytics reads them for detection; writing gives boxes.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Optional

import numpy as np
import yaml

from cvpipe.detection.annotations import (
    Category,
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
    size_mismatch,
)
from cvpipe.detection.formats.classes import as_categories, read_class_file
from cvpipe.detection.formats.textlabels import (
    add_label_objects,
    default_categories,
    ignore_path,
    parse_label_file,
    write_label_files,
)
from cvpipe.errors import DataError

SPLIT_KEYS = ("train", "val", "test")
DECIMALS = 15  # normalised values: keeps pixel round trips exact to ~1e-11 px for images up to 10^4 px


def find_data_yaml(root: Path) -> Optional[Path]:
    if root.is_file():
        return root
    for name in ("data.yaml", "dataset.yaml", "data.yml"):
        if (root / name).is_file():
            return root / name
    found = sorted(list(root.glob("*.yaml")) + list(root.glob("*.yml")))
    return found[0] if len(found) == 1 else None


def label_path_for(image: Path, labels: str = "labels") -> Path:
    """Ultralytics' rule: the last ``/images/`` becomes ``/labels/``, the suffix ``.txt``."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}{labels}{os.sep}"
    text = str(image)
    if sa in text:
        head, tail = text.rsplit(sa, 1)
        text = head + sb + tail
    return Path(text).with_suffix(".txt")


def _names_from_yaml(cfg: dict, yaml_path: Path) -> Optional[list[Category]]:
    names = cfg.get("names")
    if names is None:
        return None
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DataError(f"{yaml_path}: 'names' keys must be class indices 0..K-1") from None
        if keys != list(range(len(keys))):
            raise DataError(f"{yaml_path}: 'names' keys must be 0..{len(keys) - 1} without gaps")
        names = [names[k] if k in names else names[str(k)] for k in keys]
    if not isinstance(names, list):
        raise DataError(f"{yaml_path}: 'names' must be a list or a mapping index -> name")
    ids = cfg.get("category_ids")
    if ids is not None:
        if (not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
                or len(ids) != len(names) or len(set(ids)) != len(ids)):
            raise DataError(f"{yaml_path}: 'category_ids' must list one distinct id per name")
        return [Category(int(i), str(n)) for i, n in zip(ids, names)]
    return as_categories([str(n) for n in names])


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies in ``folder`` once ``..`` is resolved (lexically: a symlink the
    dataset's owner placed inside the folder is followed, a ``../`` written in a file is not)."""
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def _split_sources(cfg: dict, base: Path, root: Path, yaml_path: Optional[Path] = None) -> list[tuple[str, Path]]:
    """(split, image folder or list) pairs. ``base`` is the dataset root (the YAML's ``path``,
    else its folder): split paths that lead outside it are refused, as file names in
    annotations are, so a downloaded YAML cannot make cvpipe read or copy other files."""
    sources = []
    names = cfg.get("split_names") if isinstance(cfg.get("split_names"), dict) else {}
    for key in SPLIT_KEYS:
        value = cfg.get(key)
        for item in (value if isinstance(value, list) else [value] if value else []):
            split = str(names.get(item, key))
            p = base / item  # an absolute item stays as it is
            if not _inside(p, base) and item.startswith("../"):
                # Roboflow exports write `train: ../train/images` next to train/; Ultralytics
                # drops the leading ../ too
                p = base / item[3:]
            if not _inside(p, base):
                raise DataError(f"{yaml_path}: {key} path {item!r} leads outside the dataset folder {base}; "
                                "split paths must stay inside it (or set 'path' to the folder that holds them)")
            sources.append((split, p))
    if sources:
        return sources
    images = base / "images" if (base / "images").is_dir() else root / "images"
    if not images.is_dir():
        raise NoAnnotationFiles(f"{root}: no images/ folder and no train/val entries in a data YAML (not a YOLO dataset)")
    if any(p.is_file() for p in images.iterdir()):
        return [("", images)]
    return [(d.name, d) for d in sorted(images.iterdir()) if d.is_dir()]


def _split_images(split: str, split_source: Path, base: Path, b: DatasetBuilder) -> list[tuple[Path, str]]:
    """(image path, file name relative to the split's image folder) pairs."""
    if split_source.is_dir():
        return [(p, relative_posix(p, split_source)) for p in list_images(split_source)]
    if not split_source.exists():  # data YAMLs often name a test split that was never made
        b.issue(str(split_source), f"{split or 'split'} images do not exist; split skipped",
                level="warning" if split == "test" else "error")
        return []
    if split_source.suffix == ".txt" and split_source.is_file():
        out = []
        for n, line in enumerate(read_text(split_source, "image list").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rel = safe_relpath(line.strip().removeprefix("./"), "image path")
            except DataError as e:
                b.issue(str(split_source), f"line {n}: {e}; skipped")
                continue
            out.append((base / rel, rel))
        return out
    b.issue(str(split_source), "split source is neither an image folder nor a .txt list of images; skipped")
    return []


def _shown(p: Path, root: Path) -> str:
    """A path for messages: relative to the dataset folder when inside it."""
    return relative_posix(p, root) if p.is_relative_to(root) else str(p)


def read_yolo(path, image_root=None, classes=None) -> DetectionDataset:
    """Read a YOLO dataset folder (or its data YAML). ``classes`` overrides the class names."""
    path = Path(path)
    yaml_path = find_data_yaml(path)
    root = path.parent if path.is_file() else path
    cfg: dict = {}
    if yaml_path is not None:
        try:
            cfg = yaml.safe_load(read_text(yaml_path, "data YAML")) or {}
        except yaml.YAMLError as e:
            raise DataError(f"{yaml_path}: not valid YAML ({' '.join(str(e).split())})") from None
        if not isinstance(cfg, dict):
            raise DataError(f"{yaml_path}: expected a mapping with 'names' and train/val entries")
        for key in ("path", *SPLIT_KEYS):
            value = cfg.get(key)
            items = value if isinstance(value, list) and key != "path" else [value]
            if value is not None and not all(isinstance(v, str) for v in items):
                raise DataError(f"{yaml_path}: '{key}' must be a path{' or a list of paths' if key != 'path' else ''}, "
                                f"not {value!r}")
    base = root
    if cfg.get("path"):
        p = Path(cfg["path"])
        base = p if p.is_absolute() else yaml_path.parent / p
    from_yaml = _names_from_yaml(cfg, yaml_path) if cfg else None
    from_file = read_class_file(root / "classes.txt")
    categories = as_categories(classes) or from_yaml or from_file

    b = DatasetBuilder(categories or [], format="yolo")
    if from_yaml and from_file and [c.name for c in from_yaml] != [c.name for c in from_file]:
        b.issue(str(root / "classes.txt"), f"lists {len(from_file)} classes that differ from the {len(from_yaml)} "
                f"'names' of {yaml_path.name}; the data YAML is used (delete or fix classes.txt)", level="warning")
    nc = cfg.get("nc")
    if from_yaml and nc is not None and nc != len(from_yaml):
        b.issue(str(yaml_path), f"nc is {nc!r} but 'names' lists {len(from_yaml)} classes", level="warning")
    parsed = []
    label_files_used = set()
    sources = _split_sources(cfg, base, root, yaml_path)
    for split, source in sources:
        for image_path, file_name in progress(_split_images(split, source, base, b), f"reading YOLO {split}".strip()):
            label = label_path_for(image_path)
            labels = [(label, False), (ignore_path(label, "labels"), True)]
            try:
                width, height = read_image_size(image_path)
            except DataError as e:
                b.issue(_shown(image_path, root), f"{e}; image skipped with its labels")
                label_files_used |= {p.resolve() for p, _ in labels if p.is_file()}  # not orphans: said once here
                continue
            info = ImageInfo(file_name, width, height, 0, split, image_path, _shown(label, root))
            found = []
            for p, ignored in labels:
                if p.is_file():
                    label_files_used.add(p.resolve())
                    found.append((_shown(p, root), ignored, *parse_label_file(p, _shown(p, root), b, polygons=True)))
            parsed.append((info, found))

    if not b.categories:
        top = max((int(c.max()) for _, found in parsed for *_, c, _v in found if len(c)), default=-1)
        b.categories = default_categories(top + 1)
        b.issue(str(root), f"no class names (data YAML 'names' or classes.txt); using indices 0..{top}", level="warning")
    b.numbered_ids = True
    for n, (info, found) in enumerate(parsed):
        info.id = n + 1
        image = b.add_image(info)
        for rel, ignored, lines, cls, values in found:
            wh = np.array([info.width, info.height, info.width, info.height], dtype=np.float64)
            with np.errstate(over="ignore"):  # absurd values become inf; add_label_objects reports them
                boxes = convert_boxes(values * wh, "cxcywh", "xyxy")
            add_label_objects(b, image, rel, lines, cls, boxes, ignored)

    # label folders: the usual ones and those beside each split's images (train/images -> train/labels)
    label_dirs = {base / "labels", root / "labels"} | {label_path_for(s / "x.jpg").parent for _, s in sources if s.is_dir()}
    label_dirs |= {ignore_path(d / "x.txt", "labels").parent for d in label_dirs}
    unused = {p.resolve(): p for d in label_dirs if d.is_dir() for p in d.rglob("*.txt")}
    if not unused and not label_files_used:
        raise NoAnnotationFiles(f"{root}: no YOLO label files (labels/*.txt beside images/) for the "
                                f"{len(parsed)} images found")
    for key in sorted(set(unused) - label_files_used):
        b.issue(_shown(unused[key], root), "label file without image (annotation without image)")
    return b.build()


def _split_keys(splits: list[str], issues: list[Issue]) -> dict:
    """data YAML entries for the split folders: Ultralytics reads only ``train``, ``val`` and
    ``test``, so ``train2017`` is listed under ``train`` and ``valid`` under ``val``; the
    original names go to ``split_names`` (folder -> name) for cvpipe to read back."""
    keys: dict = {}
    renamed = {f"images/{s}": s for s in splits if s not in SPLIT_KEYS}
    for s in splits:
        key = next((k for k in SPLIT_KEYS if s.lower().startswith(k)), s)
        if key == s and key not in SPLIT_KEYS:
            issues.append(Issue("data.yaml", f"split {s!r} is not train, val or test; Ultralytics will not read "
                                             f"images/{s}/ (rename it or re-split with --val-fraction)", level="warning"))
        keys.setdefault(key, []).append(f"images/{s}")
    return {**{k: v[0] if len(v) == 1 else v for k, v in keys.items()}, **({"split_names": renamed} if renamed else {})}


def unwritable(im: ImageInfo) -> Optional[Issue]:
    """Why an image cannot be written as YOLO (None when it can): its size is unknown, or its
    file's header gives another size than the annotation. An image without its labels would
    train as background, and normalising by either size could silently corrupt the labels."""
    if im.width <= 0 or im.height <= 0:
        return Issue(im.source or im.file_name, f"image {im.file_name}: size unknown; YOLO labels need it, image and "
                                                "labels not written")
    try:
        mismatch = size_mismatch(im)
    except DataError as e:
        mismatch = str(e)
    if mismatch:
        return Issue(im.source or im.file_name, f"{mismatch}; YOLO coordinates are fractions of the image size, so "
                     "image and labels are not written (correct the size in the annotation)")
    return None


def write_yolo(ds: DetectionDataset, dst, copy_image) -> list[Issue]:
    """Write ``images/<split>/``, ``labels/<split>/``, ``labels_ignore/<split>/`` (only where
    objects are ignored) and ``data.yaml``. An image whose size is unknown, or whose file's
    header gives another size than the annotation, is left out with an issue: its normalised
    coordinates would be wrong for one of the two sizes, and cvpipe cannot tell which."""
    dst = Path(dst)
    issues: list[Issue] = []
    keys = [(im.split, PurePosixPath(im.file_name).with_suffix("").as_posix()) for im in ds.images]
    dup = first_duplicate(keys)
    if dup is not None:
        raise DataError(f"two images of split {dup[0] or '(none)'} would share the label file {dup[1]}.txt; "
                        "rename one of them")
    wh = np.array([[im.width, im.height, im.width, im.height] for im in ds.images], dtype=np.float64).reshape(-1, 4)
    rows = convert_boxes(ds.boxes, "xyxy", "cxcywh") / np.maximum(wh[ds.image_index], 1e-300)
    for im, objs in progress(list(zip(ds.images, ds.objects_by_image())), "writing YOLO"):
        sub = PurePosixPath(im.split) if im.split else PurePosixPath()
        problem = unwritable(im)
        if problem is not None:
            issues.append(problem)
            continue
        issues.extend(copy_image(im, dst / "images" / sub / im.file_name))
        label = dst / "labels" / sub / PurePosixPath(im.file_name).with_suffix(".txt")
        write_label_files(ds, objs, rows[objs], label, "labels", DECIMALS)
    data = {
        **_split_keys([s for s in ds.splits if s], issues),
        "nc": len(ds.categories),
        "names": {k: c.name for k, c in enumerate(ds.categories)},
        "category_ids": [c.id for c in ds.categories],
    }
    header = "# written by cvpipe; category_ids maps class index -> dataset category id\n"
    if "" in ds.splits:
        header += "# images without a split are in images/ (split with `cvpipe convert --val-fraction`)\n"
    (dst / "data.yaml").write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return issues
