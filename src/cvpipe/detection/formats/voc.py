"""Pascal VOC: ``Annotations/<name>.xml``, ``JPEGImages/<file>``, ``ImageSets/Main/<split>.txt``.

Each XML holds ``filename``, ``size`` (width, height, depth) and ``object`` entries with
``name``, ``pose``, ``truncated``, ``difficult`` and ``bndbox`` (``xmin ymin xmax ymax``,
1-based and inclusive: a box over the first ten pixel columns is ``xmin=1, xmax=10``).
In memory that box is ``x1 = xmin - 1 = 0``, ``x2 = xmax = 10``; writing adds the 1 back, so
integer boxes round-trip exactly. ``difficult`` is the ignore flag.

XML is parsed with defusedxml: external entities, DTD tricks and entity-expansion bombs are
refused (the file is skipped with one issue).

Classes get ids ``1..K`` in the order given by ``classes`` (the reader's argument), a
``classes.txt`` or ``labels.txt`` beside ``Annotations/``, or else sorted by name. An object
whose name is not in an explicit class list is skipped with an issue.

Splits: every ``ImageSets/Main/<split>.txt`` except per-class lists (``dog_train.txt`` with
``<name> <1|0|-1>`` lines); ``trainval`` is skipped when ``train`` and ``val`` exist.

Image ids: VOC has none, so images are numbered 1..N in file order, except that cvpipe
writes a COCO dataset's ids to ``<image_id>`` and reads them back when every file has a
distinct one: COCO results keep matching after COCO -> VOC -> COCO. Other tools ignore it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # writing only; parsing goes through defusedxml
from pathlib import Path, PurePosixPath
from typing import Optional, Sequence

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import fromstring as safe_fromstring

from cvpipe.detection.annotations import (
    IMAGE_EXTENSIONS,
    DatasetBuilder,
    DetectionDataset,
    ImageInfo,
    Issue,
    NoAnnotationFiles,
    first_duplicate,
    format_number,
    list_images,
    parse_number,
    progress,
    read_text,
    relative_posix,
    safe_relpath,
)
from cvpipe.detection.formats.classes import as_categories, read_class_file, write_class_file
from cvpipe.errors import DataError

_OBJECT_KEYS = {"name", "difficult", "bndbox"}
_IMAGE_KEYS = {"filename", "size", "object", "folder", "path", "image_id"}


def _read_splits(root: Path) -> dict[str, str]:
    main = root / "ImageSets" / "Main"
    lists = {p.stem: p for p in sorted(main.glob("*.txt")) if not _is_class_list(p)} if main.is_dir() else {}
    if "train" in lists and "val" in lists:
        lists.pop("trainval", None)
    split_of: dict[str, str] = {}
    for split, p in lists.items():
        for line in read_text(p, "split list").splitlines():
            if line.split():
                split_of.setdefault(line.split()[0], split)
    return split_of


def _is_class_list(path: Path) -> bool:
    """A per-class list (``dog_train.txt``: ``<name> <1|0|-1>`` lines), not a split: its stem
    has an underscore and its first line two fields. ``train_small.txt`` is a split."""
    if "_" not in path.stem:
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = next((line for line in f if line.strip()), "")
    except OSError:
        return False  # read (and reported) as a split list
    fields = first.split()
    return len(fields) == 2 and fields[1].lstrip("-").isdigit()


def _text(node, tag: str) -> Optional[str]:
    child = node.find(tag)
    return child.text.strip() if child is not None and child.text is not None else None


def _scalar(text: str):
    """An extra field's text as an int when it is one (``<truncated>0``), else the string."""
    return int(text) if text.lstrip("-").isdigit() else text


def _flag(node, tag: str, what: str) -> int:
    text = _text(node, tag)
    if text in (None, ""):
        return 0
    value = parse_number(text, what)
    return int(value)


_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def _parse_xml(path: Path):
    """The root element of an XML file, parsed with defusedxml.

    Expat decodes UTF-8/16, ASCII and single-byte encodings itself; a multi-byte encoding
    declared in the header (GBK, Big5, Shift-JIS: labelling tools on Chinese or Japanese
    Windows) is decoded with Python's codecs first. Undecodable text raises ``ValueError``.
    """
    data = path.read_bytes()
    try:
        return safe_fromstring(data)
    except DefusedXmlException:
        raise
    except ValueError:  # "multi-byte encodings are not supported"
        declared = _DECLARED_ENCODING.match(data)
        if declared is None:
            raise
        encoding = declared.group(1).decode("ascii")
        try:
            text = data.decode(encoding)
        except (LookupError, UnicodeDecodeError) as e:
            raise ValueError(f"not readable as its declared encoding {encoding} ({e})") from None
        return safe_fromstring(text)


def read_voc(path, image_root=None, classes: Optional[Sequence[str]] = None) -> DetectionDataset:
    """Read a VOC folder. A broken XML is skipped with one issue; a bad object is skipped with
    one issue naming its index in the file."""
    root = Path(path)
    ann_dir = root / "Annotations"
    if not ann_dir.is_dir():
        raise NoAnnotationFiles(f"{root}: no Annotations/ folder (not a Pascal VOC dataset)")
    image_dir = Path(image_root) if image_root else root / "JPEGImages"
    xml_files = sorted(ann_dir.rglob("*.xml"))
    if not xml_files:
        raise NoAnnotationFiles(f"{root}: no Annotations/*.xml files (Pascal VOC has one per image)")
    explicit = as_categories(classes) or read_class_file(root / "classes.txt") or read_class_file(root / "labels.txt")
    split_of = _read_splits(root)
    b = DatasetBuilder(format="voc")

    parsed = []  # (xml_path, ImageInfo, [(index, name, box, difficult, extra)])
    for xml_path in progress(xml_files, "reading VOC"):
        rel = relative_posix(xml_path, root)
        try:
            node = _parse_xml(xml_path)
        except DefusedXmlException as e:
            b.issue(rel, f"refused: declares XML entities or a DTD, which can read other files or expand without "
                         f"bound ({e}); file skipped")
            continue
        except (ParseError, OSError, ValueError, LookupError) as e:  # UnicodeDecodeError is a ValueError
            b.issue(rel, f"cannot be parsed ({type(e).__name__}: {e}); file skipped")
            continue
        try:
            info, note = _image_info(node, xml_path, ann_dir, image_dir, rel)
        except DataError as e:
            b.issue(rel, f"{e}; file skipped")
            continue
        if note:
            b.issue(rel, note, level="warning")
        info.split = split_of.get(PurePosixPath(relative_posix(xml_path, ann_dir)).with_suffix("").as_posix(), "")
        stored = _text(node, "image_id") or ""
        info.id = int(stored) if stored.lstrip("-").isdigit() else None  # the COCO id cvpipe wrote, if any
        objects = []
        for k, obj in enumerate(node.findall("object")):
            try:
                objects.append((k, *_object(obj)))
            except DataError as e:
                b.issue(rel, f"{e}; object skipped", index=k)
        parsed.append((rel, info, objects))

    b.categories = explicit or as_categories(sorted({o[1] for _, _, objs in parsed for o in objs})) or []
    id_of = {c.name: c.id for c in b.categories}
    stored = [info.id for _, info, _ in parsed]
    keep_ids = None not in stored and len(set(stored)) == len(stored)
    b.numbered_ids = not keep_ids
    for n, (rel, info, objects) in enumerate(parsed):
        info.id = info.id if keep_ids else n + 1
        image = b.add_image(info)
        for k, name, box, difficult, extra in objects:
            if name not in id_of:
                b.issue(rel, f"class {name!r} is not in the class list (label outside the class list); object skipped", index=k)
                continue
            b.add_object(image, box, id_of[name], difficult, None, -1, k, extra)
        if not info.path.is_file():
            shown = relative_posix(info.path, root) if info.path.is_relative_to(root) else str(info.path)
            b.issue(rel, f"image {shown} is missing (annotation without image)")

    # an image is covered by its XML's <filename> or, for an XML that could not be read, by its name
    annotated = {info.path for _, info, _ in parsed}
    xml_stems = {PurePosixPath(relative_posix(x, ann_dir)).with_suffix("").as_posix() for x in xml_files}
    for p in list_images(image_dir):
        if p not in annotated and PurePosixPath(relative_posix(p, image_dir)).with_suffix("").as_posix() not in xml_stems:
            b.issue(relative_posix(p, root), "image without annotation file in Annotations/", level="warning")
    return b.build()


def _image_info(node, xml_path: Path, ann_dir: Path, image_dir: Path, rel: str) -> tuple[ImageInfo, Optional[str]]:
    """The image an XML describes, and a note when its <filename> had to be corrected."""
    if node.tag != "annotation":
        raise DataError(f"root element is <{node.tag}>, expected <annotation>")
    stem_path = PurePosixPath(relative_posix(xml_path, ann_dir)).with_suffix("")
    filename = _text(node, "filename")
    note = None
    if filename:
        filename = safe_relpath(filename, "filename")
        # VOC filenames are bare; keep the XML's sub-folder when the XML lives in one
        if "/" not in filename and stem_path.parent != PurePosixPath("."):
            filename = (stem_path.parent / filename).as_posix()
    if not filename or not (image_dir / filename).is_file():
        same_stem = _image_named(image_dir, stem_path)
        if not filename:
            if same_stem is None:
                raise DataError("no <filename> and no image with the same name in JPEGImages/")
            filename = same_stem
        elif same_stem is not None:
            # images renamed after labelling, or <filename> without its extension: the devkit
            # and torchvision take the XML's name, so the image is not lost
            note = f"<filename> {filename} is not in {image_dir.name}/; using {same_stem}, which has the XML's name"
            filename = same_stem
    size = node.find("size")
    width = height = 0
    extra = {}
    if size is not None:
        width = int(parse_number(_text(size, "width") or "0", "size/width"))
        height = int(parse_number(_text(size, "height") or "0", "size/height"))
        depth = _text(size, "depth")
        if depth:
            extra["depth"] = depth
    for child in node:
        if child.tag not in _IMAGE_KEYS and len(child) == 0:  # an empty <coco_url/> is kept as "" too
            extra[child.tag] = _scalar((child.text or "").strip())
    return ImageInfo(filename, width, height, 0, "", image_dir / filename, rel, extra), note


def _image_named(image_dir: Path, stem_path: PurePosixPath) -> Optional[str]:
    """The image in ``image_dir`` named like the annotation (any image extension, any case)."""
    for ext in IMAGE_EXTENSIONS:
        for suffix in (ext, ext.upper()):
            if (image_dir / f"{stem_path}{suffix}").is_file():
                return f"{stem_path}{suffix}"
    return None


def _object(obj) -> tuple[str, np.ndarray, bool, dict]:
    name = _text(obj, "name")
    if not name:
        raise DataError("has no <name>")
    bnd = obj.find("bndbox")
    if bnd is None:
        raise DataError(f"{name!r} has no <bndbox>")
    values = []
    for tag in ("xmin", "ymin", "xmax", "ymax"):
        text = _text(bnd, tag)
        if text is None:
            raise DataError(f"{name!r} bndbox has no <{tag}>")
        values.append(parse_number(text, f"bndbox/{tag}"))
    xmin, ymin, xmax, ymax = values
    box = np.array([xmin - 1.0, ymin - 1.0, xmax, ymax])
    difficult = bool(_flag(obj, "difficult", "difficult"))
    extra = {c.tag: _scalar((c.text or "").strip()) for c in obj if c.tag not in _OBJECT_KEYS and len(c) == 0}
    return name, box, difficult, extra


def _voc_xml(ds: DetectionDataset, i: int, objs: np.ndarray, names: dict, write_id: bool) -> ET.Element:
    im = ds.images[i]
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = PurePosixPath(im.file_name).name
    if write_id:
        ET.SubElement(root, "image_id").text = str(im.id)
    for k, v in im.extra.items():
        if k != "depth" and isinstance(v, (str, int, float)):
            ET.SubElement(root, k).text = str(v)
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(int(im.width))
    ET.SubElement(size, "height").text = str(int(im.height))
    ET.SubElement(size, "depth").text = str(im.extra.get("depth", 3))
    for j in objs:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = names[int(ds.category_id[j])]
        extra = ds.object_extra[j]
        ET.SubElement(obj, "pose").text = str(extra.get("pose", "Unspecified"))
        ET.SubElement(obj, "truncated").text = str(extra.get("truncated", 0))
        ET.SubElement(obj, "difficult").text = str(int(ds.ignore[j]))
        for k, v in extra.items():
            if k not in ("pose", "truncated") and isinstance(v, (str, int, float)) and k.isidentifier():
                ET.SubElement(obj, k).text = str(v)
        bnd = ET.SubElement(obj, "bndbox")
        x1, y1, x2, y2 = ds.boxes[j]
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (x1 + 1.0, y1 + 1.0, x2, y2)):
            ET.SubElement(bnd, tag).text = format_number(v)
    ET.indent(root)
    return root


def write_voc(ds: DetectionDataset, dst, copy_image) -> list[Issue]:
    """Write ``Annotations/``, ``JPEGImages/`` and ``ImageSets/Main/<split>.txt``, plus a
    ``classes.txt`` that fixes the class order for reading back."""
    dst = Path(dst)
    issues: list[Issue] = []
    stems = [PurePosixPath(im.file_name).with_suffix("").as_posix() for im in ds.images]
    dup = first_duplicate(stems)
    if dup is not None:
        raise DataError(f"two images would share Annotations/{dup}.xml (VOC keeps every split in one folder); rename one of them")
    names = {c.id: c.name for c in ds.categories}
    ids = [im.id for im in ds.images]
    # ids that are not cvpipe's own 1..N numbering (COCO's) go into <image_id>, to be read back
    write_id = ids != list(range(1, len(ids) + 1)) and len(set(ids)) == len(ids)
    (dst / "Annotations").mkdir(parents=True, exist_ok=True)
    for i, (im, objs) in enumerate(progress(list(zip(ds.images, ds.objects_by_image())), "writing VOC")):
        xml_path = dst / "Annotations" / f"{stems[i]}.xml"
        xml_path.parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(_voc_xml(ds, i, objs, names, write_id)).write(xml_path, encoding="utf-8", xml_declaration=False)
        target = dst / "JPEGImages" / PurePosixPath(stems[i]).parent / PurePosixPath(im.file_name).name
        issues.extend(copy_image(im, target))
    main = dst / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    for split in ds.splits:
        if split:
            lines = [s for s, im in zip(stems, ds.images) if im.split == split]
            (main / f"{split}.txt").write_text("".join(f"{s}\n" for s in lines), encoding="utf-8")
    write_class_file(dst / "classes.txt", ds.categories)
    return issues
