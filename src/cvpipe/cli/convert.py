"""cvpipe convert SRC DST --to FORMAT"""

from __future__ import annotations

import sys

DESCRIPTION = """\
Convert a detection dataset between COCO JSON, Pascal VOC, YOLO and the txt format
(JPEGImages/ + Annotations/*.txt with pixel `cls cx cy w h` + filelist.txt).

Boxes, ignore flags (VOC difficult, COCO iscrowd), category ids and names, and splits are
kept; integer VOC boxes survive VOC -> COCO -> YOLO -> VOC exactly. A file that cannot be
read is reported on one line and skipped; the rest is converted (exit status 1 then).
The output is written aside and moved into DST at the end: a failed run leaves DST as it was.
YOLO and txt have no ignore flag: their ignored objects go to labels_ignore/ (txt:
Annotations_ignore/) so training tools do not see them and cvpipe reads them back. YOLO
needs image sizes: they are read from the image headers, EXIF orientation applied; an image
whose header disagrees with the size in its annotation is reported and not written.

Examples:
  cvpipe convert VOCdevkit/VOC2007 voc_coco --from voc --to coco
  cvpipe convert voc_coco yolo_ds --to yolo --min-size 4 --val-fraction 0.2
  cvpipe convert coco.json subset --to voc --include person,car
"""


def register(sub) -> None:
    from cvpipe.cli import formatter
    from cvpipe.detection.names import FORMATS, IMAGE_MODES

    p = sub.add_parser("convert", help="convert detection datasets: coco, voc, yolo, txt",
                       description=DESCRIPTION, formatter_class=formatter)
    p.add_argument("src", help="source dataset folder (or COCO .json / YOLO data .yaml)")
    p.add_argument("dst", help="destination folder (empty or new)")
    p.add_argument("--from", dest="src_format", choices=FORMATS, help="source format (detected when omitted)")
    p.add_argument("--to", dest="dst_format", choices=FORMATS, required=True, help="destination format")
    p.add_argument("--classes", help="ordered class names for VOC/YOLO/txt sources: a,b,c or a file, one per line")
    p.add_argument("--include", help="keep only these classes: a,b,c")
    p.add_argument("--exclude", help="drop these classes: a,b,c")
    p.add_argument("--category-map", metavar="FILE", help="YAML/JSON {name: id} giving explicit category ids")
    p.add_argument("--min-size", type=float, default=0.0, metavar="PX",
                   help="boxes narrower or lower than this many pixels become ignored (default 0: none)")
    p.add_argument("--val-fraction", type=float, metavar="F",
                   help="re-split the images at random: fraction F to val, the rest to train")
    p.add_argument("--seed", type=int, default=0, help="seed of the random split (default 0)")
    p.add_argument("--images", choices=IMAGE_MODES, default="copy",
                   help="copy the images, hard-link them, or write annotations only (default copy)")
    p.add_argument("--image-root", metavar="DIR", help="where the source images are, if not in the usual place")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty destination folder, replacing the folders and files of "
                   "the --to layout there (an earlier conversion); other files are kept")
    p.set_defaults(func=run)


def names_list(value):
    """``a,b,c`` or a class file (one name per line) -> list of names/categories, or None."""
    from pathlib import Path

    from cvpipe.detection.formats.classes import read_class_file
    from cvpipe.errors import ConfigError

    if not value:
        return None
    if Path(value).is_file():
        return read_class_file(Path(value))
    if Path(value).suffix.lower() in (".txt", ".names"):  # meant as a class file, not a class name
        raise ConfigError(f"class file {value} not found; give an existing file or names as a,b,c")
    return [v.strip() for v in value.split(",") if v.strip()]


def read_category_map(path):
    from pathlib import Path

    import yaml

    from cvpipe.errors import ConfigError

    if not path:
        return None
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))  # JSON is YAML too
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"category map {path}: cannot be read ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
        raise ConfigError(f"category map {path}: expected a mapping name: integer id")
    return {str(k): int(v) for k, v in data.items()}


def run(args) -> int:
    from cvpipe.detection import convert

    report = convert(
        args.src, args.dst, args.src_format, args.dst_format,
        classes=names_list(args.classes), include=names_list(args.include), exclude=names_list(args.exclude),
        category_map=read_category_map(args.category_map), min_size=args.min_size,
        val_fraction=args.val_fraction, seed=args.seed, images=args.images, image_root=args.image_root,
        overwrite=args.overwrite,
    )
    for issue in report.issues:
        print(f"{issue.level}: {issue}", file=sys.stderr)
    print(report.summary())
    return 1 if report.errors else 0
