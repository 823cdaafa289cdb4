"""cvpipe profile MODEL_OR_CHECKPOINT [key=value ...]"""

from __future__ import annotations

from pathlib import Path

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
    from cvpipe.analysis import profile_model
    from cvpipe.errors import ConfigError
    from cvpipe.models import create_model
    from cvpipe.tasks.common import as_bool, device_for, increment_run_dir, load_trained, parse_options

    known = {"imgsz": _size, "batch": int, "depth": int, "runs": int, "device": str, "num_classes": int,
             "in_chans": int, "save": as_bool, "project": str, "name": str}
    opts, _ = parse_options(args.options, known, "profile")
    if opts.get("batch", 1) < 1:
        raise ConfigError("batch must be at least 1")
    if Path(args.model).is_file() or Path(args.model).suffix in (".pt", ".pth"):
        trained = load_trained(args.model)
        model, in_chans, name = trained.model, trained.in_chans, Path(args.model).name
        imgsz = opts.get("imgsz", tuple(trained.preprocess["image_size"]))
    else:
        in_chans = opts.get("in_chans", 3)
        model = create_model(args.model, num_classes=opts.get("num_classes", 1000), in_chans=in_chans).eval()
        name, imgsz = args.model, opts.get("imgsz", 224)
    model = model.to(device_for(opts.get("device", "auto")))
    profile = profile_model(model, imgsz, opts.get("batch", 1), in_chans, name, latency_runs=opts.get("runs", 10))
    text = profile.to_text(depth=opts.get("depth", 2))
    print(text)
    if opts.get("save", True):
        out_dir = increment_run_dir(opts.get("project", "runs/profile"), opts.get("name", "exp"))
        (out_dir / "profile.txt").write_text(text + "\n", encoding="utf-8")
        profile.save_json(out_dir / "profile.json")
        profile.save_plots(out_dir)
        print(f"report, JSON and plots written to {out_dir}")
    return 0
