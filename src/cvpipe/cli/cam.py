"""cvpipe cam CHECKPOINT IMAGES... [key=value ...]"""

from __future__ import annotations

from pathlib import Path

DESCRIPTION = """\
Class activation maps: where in each image the model looked for its answer.

IMAGES are image files, folders (searched recursively) or quoted globs. Options as key=value:

  method=gradcam   cam | gradcam | gradcam++ | xgradcam | scorecam | eigencam | layercam |
                   hirescam; several comma-separated (method=gradcam,scorecam) or "all"
                   (all that apply: cam needs a global-average-pool + linear head)
  layer=NAME       dotted module name(s), comma-separated maps are averaged
                   (default: the model's own CAM layer; list layers with `cvpipe features CKPT --list`)
  target=CLASS     class name or index to explain (default: each image's predicted class)
  faithfulness=false  also score every map with ROAD (remove the most / least relevant
                   pixels, measure p(class)); slower
  batch=8          images per forward pass
  alpha=0.5        overlay opacity
  grid=16          images in cam_grid.png
  device=auto      auto | cpu | cuda | cuda:N | mps
  project=runs/cam name=exp   output folder (auto-incremented)

Writes NAME_METHOD.png overlays, NAME_METHOD.npy maps (float32 in [0, 1] at the model's
input size), cam_grid.png and cam_summary.csv.

Example: cvpipe cam runs/train/exp/weights/best.pt photos/ method=gradcam,eigencam faithfulness=true
"""


def register(sub) -> None:
    from cvpipe.cli import formatter

    p = sub.add_parser("cam", help="class activation maps (Grad-CAM, Score-CAM, ...) for images",
                       description=DESCRIPTION, formatter_class=formatter)
    p.add_argument("checkpoint", help="a cvpipe checkpoint (best.pt or last.pt)")
    p.add_argument("items", nargs="+", metavar="IMAGES... key=value", help="images, folders or globs, then options")
    p.set_defaults(func=run)


def split_items(items):
    """Positional items -> (sources, options): ``key=value`` unless the item is an existing path."""
    import re

    sources, options = [], []
    for item in items:
        if re.match(r"^[A-Za-z_][\w.]*=", item) and not Path(item).exists():
            options.append(item)
        else:
            sources.append(item)
    return sources, options


def run(args) -> int:
    from cvpipe.data.image_io import read_image
    from cvpipe.data.transforms import denormalize
    from cvpipe.engine.progress import Progress
    from cvpipe.errors import ConfigError
    from cvpipe.explain import METHODS
    from cvpipe.explain.api import explain_images
    from cvpipe.tasks.common import as_bool, device_for, increment_run_dir, load_trained, parse_options
    from cvpipe.tasks.predict import resolve_source

    sources, items = split_items(args.items)
    known = {"method": str, "layer": str, "target": str, "faithfulness": as_bool, "batch": int, "alpha": float,
             "grid": int, "device": str, "project": str, "name": str}
    opts, _ = parse_options(items, known, "cam")
    if not sources:
        raise ConfigError("name at least one image, folder or glob after the checkpoint")
    methods = opts.get("method", "gradcam")
    methods = list(METHODS) if methods == "all" else [m for m in methods.split(",") if m]
    trained = load_trained(args.checkpoint)
    model = trained.model.to(device_for(opts.get("device", "auto")))
    paths = []
    for source in sources:
        kind, found = resolve_source(source)
        if kind != "images":
            raise ConfigError(f"{source}: cam explains images, not videos or cameras")
        paths += found

    def samples():
        for path in Progress(paths, desc="cam", unit="img"):
            x = trained.transform(read_image(path, mode=trained.image_mode))
            yield Path(path).stem, x, denormalize(x, trained.preprocess)

    out_dir = increment_run_dir(opts.get("project", "runs/cam"), opts.get("name", "exp"))
    report = explain_images(
        model, samples(), out_dir, methods, opts.get("layer"), opts.get("target"), trained.classes,
        faithfulness=opts.get("faithfulness", False), batch_size=opts.get("batch", 8),
        grid_max=opts.get("grid", 16), alpha=opts.get("alpha", 0.5), skip_unsupported=opts.get("method") == "all",
    )  # fmt: skip
    for method, why in report.skipped.items():
        print(f"skipped {method}: {why}")
    shown = report.records[:20]
    for r in shown:
        road = "" if r.road is None else f"  ROAD {r.road:+.3f}  drop {r.confidence_drop:+.3f}"
        print(f"{r.image:<24} {r.method:<10} {r.target} p={r.probability:.3f}{road}")
    if len(report.records) > len(shown):
        print(f"... {len(report.records) - len(shown)} more rows in {report.summary_csv}")
    for method, scores in report.faithfulness().items():
        print(f"faithfulness {method:<10} ROAD {scores['road']:+.3f}  confidence drop {scores['confidence_drop']:+.3f} "
              "(higher is more faithful)")
    print(f"{len(paths)} images explained; overlays, maps and cam_grid.png in {out_dir}")
    return 0
