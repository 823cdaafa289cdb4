"""cvpipe predict CHECKPOINT SOURCE [key=value ...]"""

from __future__ import annotations

DESCRIPTION = """\
Predict labels with a trained checkpoint.

SOURCE is an image, a folder (searched recursively), a quoted glob ("photos/*.jpg"),
a video file, or a webcam index (0). Options as key=value:

  topk=5          labels to report per image (single-label models)
  threshold=0.5   probability threshold (multi-label models; default from training)
  batch=32        images per forward pass
  device=auto     auto | cpu | cuda | cuda:N | mps
  save=true       write predictions.csv/json and annotated images/video
  max_frames=0    stop a video or webcam after N frames (0 = all / until Ctrl-C)
  project=runs/predict name=exp   output folder (auto-incremented)

Example: cvpipe predict runs/train/exp/weights/best.pt photos/ topk=3
"""


def register(sub) -> None:
    from cvpipe.cli import formatter

    p = sub.add_parser("predict", help="predict images, folders, videos or a webcam", description=DESCRIPTION,
                       formatter_class=formatter)
    p.add_argument("checkpoint", help="a cvpipe checkpoint (best.pt or last.pt), or the .onnx `cvpipe export` made of it")
    p.add_argument("source", help="image, folder, glob, video file or webcam index")
    p.add_argument("options", nargs="*", metavar="key=value", help="options listed above")
    p.set_defaults(func=run)


def run(args) -> int:
    from cvpipe.tasks.common import as_bool, parse_options
    from cvpipe.tasks.predict import predict

    known = {"topk": int, "threshold": float, "batch": int, "device": str, "save": as_bool, "max_frames": int,
             "project": str, "name": str}
    opts, _ = parse_options(args.options, known, "predict")
    if "batch" in opts:
        opts["batch_size"] = opts.pop("batch")
    predict(args.checkpoint, args.source, **opts)
    return 0
