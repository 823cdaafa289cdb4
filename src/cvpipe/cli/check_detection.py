"""cvpipe check-detection PATH"""

from __future__ import annotations

import json

DESCRIPTION = """\
Check a detection dataset (COCO, VOC, YOLO or txt) and print what is wrong, with the file
and the object index (line number for YOLO/txt):

  errors    boxes outside the image or with zero/negative size, YOLO coordinates outside
            [0, 1], labels outside the class list, annotations without images, duplicate
            ids, missing or mismatching image sizes, files that cannot be parsed
  warnings  images without objects or annotation files, heavy class imbalance, classes
            without objects, exact duplicate boxes

Then statistics (objects per class, box sizes, COCO size ranges). With --out, PNG plots:
objects per class, box sizes, aspect ratios, boxes per image. Exit status 1 when errors are
found, 0 otherwise.
"""


def register(sub) -> None:
    from cvpipe.cli import formatter
    from cvpipe.detection.names import FORMATS

    p = sub.add_parser("check-detection", help="lint a detection dataset: bad boxes, labels, files, statistics",
                       description=DESCRIPTION, formatter_class=formatter)
    p.add_argument("path", help="dataset folder (or COCO .json / YOLO data .yaml)")
    p.add_argument("--format", choices=FORMATS, help="dataset format (detected when omitted)")
    p.add_argument("--classes", help="ordered class names (a,b,c or a file); labels outside it are errors")
    p.add_argument("--image-root", metavar="DIR", help="where the images are, if not in the usual place")
    p.add_argument("--out", metavar="DIR", help="write the PNG plots (and report.json) to this folder")
    p.add_argument("--imbalance", type=float, default=10.0, metavar="R",
                   help="warn when the largest class has over R times the objects of the smallest (default 10)")
    p.add_argument("--no-image-check", action="store_true",
                   help="do not open image headers to compare their sizes with the annotations")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="print at most N findings of each kind (default 20)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from cvpipe.cli.convert import names_list
    from cvpipe.detection import lint

    report = lint(args.path, args.format, classes=names_list(args.classes), image_root=args.image_root,
                  out_dir=args.out, imbalance=args.imbalance, check_files=not args.no_image_check)
    print(report.format_text(limit=args.limit))
    if args.out:
        findings = [{"level": f.level, "file": f.file, "object": f.index, "message": f.message} for f in report.findings]
        (Path(args.out) / "report.json").write_text(json.dumps({"stats": report.stats, "findings": findings}, indent=2))
    return 0 if report.ok else 1
