"""cvpipe dataset-report [CONFIG_OR_PATH] [key=value ...]"""

from __future__ import annotations

DESCRIPTION = """\
Inspect a dataset before training on it. Every file is read once; the report folder gets

  class_counts.png       images per class and split
  image_sizes.png        width/height histograms and a width-vs-height scatter
  samples_per_class.png  a few training images of each class
  summary.json, summary.md
                         counts, sizes, pixel formats, duplicate files (same bytes; groups
                         spanning train and val leak evaluation data), unreadable files

CONFIG_OR_PATH is a folder of images (layout detected), a YAML config or a preset name
(default: digits). Data settings can follow as key=value:

  cvpipe dataset-report path/to/images
  cvpipe dataset-report my.yaml data.val_split=0.1 --out report/
"""


def register(sub) -> None:
    from cvpipe.cli import formatter

    p = sub.add_parser("dataset-report", help="class counts, image sizes, samples, duplicates, unreadable files",
                       description=DESCRIPTION, formatter_class=formatter)
    p.add_argument("items", nargs="*", metavar="[CONFIG_OR_PATH] key=value",
                   help="image folder, config file or preset, then overrides")
    p.add_argument("--out", help="folder to write to (default: a new runs/dataset-report/exp, exp2, ...)")
    p.add_argument("--per-class", type=int, default=6, help="sample images per class in the grid (default: 6)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from cvpipe.analysis.dataset_report import dataset_report
    from cvpipe.cli.train import split_config_and_overrides
    from cvpipe.config import load_config, preset_names
    from cvpipe.errors import ConfigError

    if args.per_class < 1:
        raise ConfigError("--per-class must be at least 1")
    source, overrides = split_config_and_overrides(args.items)
    if source is not None and Path(source).is_dir():
        cfg = load_config(None, overrides)
        cfg.data.root = source
    elif source is not None and not Path(source).is_file() and source not in preset_names():
        raise ConfigError(f"{source}: no such folder, config file or preset (presets: {', '.join(preset_names())})")
    else:
        cfg = load_config(source or "digits", overrides)
    if args.out is not None:
        out = Path(args.out)
        summary = dataset_report(cfg, out, samples_per_class=args.per_class)
    else:  # numbered like every run folder, so a report on another dataset does not replace this one
        from cvpipe.tasks.common import new_run_dir

        with new_run_dir("runs/dataset-report", "exp") as out:
            summary = dataset_report(cfg, out, samples_per_class=args.per_class)
    images = ", ".join(f"{n} {name}" for name, n in summary["images"].items())
    print(f"{summary['root']}: {summary['layout']} layout, {len(summary['classes'])} classes, {images} images")
    print(f"unreadable: {len(summary['unreadable'])}, duplicate groups: {len(summary['duplicates'])} "
          f"({summary['duplicates_across_splits']} across splits)")
    print(f"report written to {out / 'summary.md'}")
    return 0
