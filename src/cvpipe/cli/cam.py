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
    from cvpipe.tasks.common import as_bool, parse_options
    from cvpipe.tasks.explain import cam

    sources, items = split_items(args.items)
    known = {"method": str, "layer": str, "target": str, "faithfulness": as_bool, "batch": int, "alpha": float,
             "grid": int, "device": str, "project": str, "name": str}
    opts, _ = parse_options(items, known, "cam")
    methods = [m for m in str(opts.pop("method", "gradcam")).split(",") if m]
    if "batch" in opts:
        opts["batch_size"] = opts.pop("batch")
    report = cam(args.checkpoint, sources, methods=methods, **opts)
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
    images = len({r.image for r in report.records})
    written = "overlays, maps and cam_grid.png" if report.grid is not None else "overlays and maps (no grid: grid=0)"
    print(f"{images} images explained; {written} in {report.out_dir}")
    return 0
