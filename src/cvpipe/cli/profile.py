"""cvpipe profile MODEL_OR_CHECKPOINT [key=value ...]"""

from __future__ import annotations

DESCRIPTION = """\
Size and cost of a model: parameters (total, trainable, per module), MACs and FLOPs per
layer and in total (FLOPs = 2 x MACs), activation memory, measured latency, receptive field
and stride per layer, and the module tree with output shapes.

MODEL_OR_CHECKPOINT is a checkpoint file or a model name (`cvpipe models` lists them;
tv:NAME for torchvision models). Options as key=value:

  imgsz=224        input size, or [H,W] (default for a checkpoint: its training size)
  batch=1          batch size for memory and latency
  depth=2          levels of the module tree to print (-1: all)
  runs=10          timed forward passes (0 skips the latency measurement)
  device=auto      auto | cpu | cuda | cuda:N | mps
  num_classes=1000 in_chans=3   for a model name
  save=true        write profile.txt, profile.json, profile_cost.png, profile_rf.png
  project=runs/profile name=exp output folder (auto-incremented)

Examples:
  cvpipe profile resnet18 imgsz=224
  cvpipe profile runs/train/exp/weights/best.pt batch=32 device=cuda
"""


def register(sub) -> None:
    from cvpipe.cli import formatter

    p = sub.add_parser("profile", help="parameters, MACs/FLOPs, memory, latency, receptive fields of a model",
                       description=DESCRIPTION, formatter_class=formatter)
    p.add_argument("model", metavar="MODEL_OR_CHECKPOINT", help="a checkpoint file or a registered model name")
    p.add_argument("options", nargs="*", metavar="key=value", help="options listed above")
    p.set_defaults(func=run)


def _size(value):
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    return int(value)


_size.__name__ = "an integer or [H,W]"


def run(args) -> int:
    from cvpipe.tasks.common import as_bool, parse_options
    from cvpipe.tasks.explain import profile, save_profile

    known = {"imgsz": _size, "batch": int, "depth": int, "runs": int, "device": str, "num_classes": int,
             "in_chans": int, "save": as_bool, "project": str, "name": str}
    opts, _ = parse_options(args.options, known, "profile")
    depth, save = opts.pop("depth", 2), opts.pop("save", True)
    where = {k: opts.pop(k) for k in ("project", "name") if k in opts}
    prof = profile(args.model, **opts)
    text = prof.to_text(depth=depth)
    print(text)
    if save:
        print(f"report, JSON and plots written to {save_profile(prof, text, **where)}")
    return 0
