"""cvpipe det-eval GT PREDICTIONS [--protocol coco|voc07|voc]"""

from __future__ import annotations

import sys

DESCRIPTION = """\
Evaluate detections against ground truth.

  coco   the 12 COCO numbers (AP@[.5:.95], AP50, AP75, AP small/medium/large, AR@1/10/100,
         AR small/medium/large), identical to pycocotools, and a per-class table
  voc07  Pascal VOC 2007: per-class AP with 11-point interpolation at IoU 0.5, and mAP
  voc    Pascal VOC 2010+: all-point AP at IoU 0.5, and mAP

GT is any dataset cvpipe reads (COCO .json, VOC, YOLO, txt). PREDICTIONS is a COCO results
.json, a folder of YOLO txt files (`cls cx cy w h conf`, one per image) or a folder of VOC
per-class files (`<prefix>_<class>.txt` with `image score xmin ymin xmax ymax`).
With --out: summary.json, per_class.csv and pr_curves.png.

Ground-truth files, lines or objects that cannot be read are listed on stderr and left out;
the exit status is then 1 (0 otherwise).
"""


def register(sub) -> None:
    from cvpipe.cli import formatter
    from cvpipe.detection.names import FORMATS, PREDICTION_FORMATS, PROTOCOLS

    p = sub.add_parser("det-eval", help="COCO / Pascal VOC mAP of detections",
                       description=DESCRIPTION, formatter_class=formatter)
    p.add_argument("gt", help="ground-truth dataset (folder, COCO .json or YOLO .yaml)")
    p.add_argument("predictions", help="COCO results .json, YOLO txt folder or VOC per-class folder")
    p.add_argument("--protocol", choices=PROTOCOLS, default="coco", help="evaluation protocol (default coco)")
    p.add_argument("--gt-format", choices=FORMATS, help="ground-truth format (detected when omitted)")
    p.add_argument("--pred-format", choices=PREDICTION_FORMATS, help="prediction format (detected when omitted)")
    p.add_argument("--split", help="evaluate only this split of the ground truth (e.g. val); predictions for images "
                   "of the other splits are left out, with a warning")
    p.add_argument("--classes", help="ordered class names for YOLO/txt ground truth (a,b,c or a file)")
    p.add_argument("--iou", type=float, help="IoU threshold of the VOC protocols (default 0.5); the COCO protocol "
                   "uses 0.50:0.95 and refuses it")
    p.add_argument("--out", metavar="DIR", help="write summary.json, per_class.csv and pr_curves.png here")
    p.set_defaults(func=run)


def run(args) -> int:
    from cvpipe.cli.convert import names_list
    from cvpipe.detection import evaluate_coco, evaluate_voc
    from cvpipe.detection.annotations import count
    from cvpipe.errors import ConfigError

    common = dict(gt_format=args.gt_format, pred_format=args.pred_format, split=args.split,
                  classes=names_list(args.classes), out_dir=args.out)
    if args.protocol == "coco":
        if args.iou is not None:
            raise ConfigError(f"--iou {args.iou:g} applies to the VOC protocols; the COCO protocol averages AP over "
                              "IoU 0.50:0.95 and reports AP50 and AP75 (use --protocol voc for one threshold)")
        result = evaluate_coco(args.gt, args.predictions, **common)
    else:
        metric = "11-point" if args.protocol == "voc07" else "all-point"
        result = evaluate_voc(args.gt, args.predictions, metric=metric, iou_threshold=0.5 if args.iou is None else args.iou,
                              **common)
    for issue in result.issues:
        print(f"{issue.level}: {issue}", file=sys.stderr)
    errors = sum(issue.level == "error" for issue in result.issues)
    print(result.summary())
    if errors:
        print(f"{count(errors, 'ground-truth problem')} (listed above): what they name is not in these numbers; "
              "fix them (`cvpipe check-detection GT`) for a faithful evaluation", file=sys.stderr)
    if args.out:
        print(f"wrote {args.out}/summary.json, per_class.csv, pr_curves.png", file=sys.stderr)
    return 1 if errors else 0
