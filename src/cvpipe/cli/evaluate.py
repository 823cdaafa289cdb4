"""cvpipe eval CHECKPOINT [key=value ...]"""

from __future__ import annotations

DESCRIPTION = """\
Evaluate a trained checkpoint and write a full report.

By default the checkpoint's own validation split is used. Options as key=value:

  data=PATH        evaluate on another dataset (any layout, detected; classes matched by
                   name; a class the model does not know is an error)
  split=SPLIT      val | test | train | all (every image of the dataset); default val,
                   or all with data=PATH
  data.KEY=VALUE   any data setting, e.g. data.layout=labelfile data.labels=labels.csv
  batch=64  workers=2  device=auto
  mistakes=16      images in the worst-mistakes gallery
  cam=0            also draw CAM overlays for the N worst mistakes (cam_method=gradcam)
  cam_layer=NAME   layer(s) to explain (default: the model's CAM layer; see `cvpipe features CKPT --list`)
  project=runs/eval name=exp

Writes summary.json, per_class.csv, predictions.csv, confusion_matrix.{csv,png},
confusion_matrix_normalized.png, roc.png and mistakes.png (multi-label: per-class AP,
mAP and F1, pr_curves.png).
"""


def register(sub) -> None:
    from cvpipe.cli import formatter

    p = sub.add_parser("eval", help="evaluate a checkpoint: metrics, confusion matrix, mistakes",
                       description=DESCRIPTION, formatter_class=formatter)
    p.add_argument("checkpoint", help="a cvpipe checkpoint (best.pt or last.pt), or the .onnx `cvpipe export` made of it")
    p.add_argument("options", nargs="*", metavar="key=value", help="options listed above")
    p.set_defaults(func=run)


def run(args) -> int:
    from cvpipe.tasks.common import parse_options
    from cvpipe.tasks.evaluate import evaluate

    known = {"data": str, "split": str, "batch": int, "workers": int, "device": str, "mistakes": int, "cam": int,
             "cam_method": str, "cam_layer": str, "project": str, "name": str}
    opts, overrides = parse_options(args.options, known, "eval", dotted_prefixes=("data.",))
    if "batch" in opts:
        opts["batch_size"] = opts.pop("batch")
    evaluate(args.checkpoint, overrides, **opts)
    return 0
