"""cvpipe preview [CONFIG] [key=value ...]"""

from __future__ import annotations

DESCRIPTION = """\
Preview the training augmentation before training: a PNG grid with one row per training
image: the image as stored, several random training views, and the eval view, exactly as
the data loaders produce them (resize, crop, flips, rotation, colour jitter, erasing).

CONFIG is a YAML file or a preset name (default: as `cvpipe train` chooses it).
Settings are overridden as dotted key=value, so augmentation can be tuned by eye:

  cvpipe preview
  cvpipe preview my.yaml data.augment.rotation=20 data.augment.color_jitter=[0.4,0.4,0.4,0.1]
  cvpipe preview data.root=path/to/images --out aug.png -n 12 --draws 6
"""


def register(sub) -> None:
    from cvpipe.cli import formatter

    p = sub.add_parser("preview", help="grid PNG of training augmentations and the eval view",
                       description=DESCRIPTION, formatter_class=formatter)
    p.add_argument("items", nargs="*", metavar="[CONFIG] key=value", help="config file or preset, then overrides")
    p.add_argument("--out", default=None,
                   help="PNG file to write, or a folder to write augmentations.png in "
                        "(default: a new runs/preview/exp, exp2, ... so an earlier preview is kept)")
    p.add_argument("-n", "--images", type=int, default=8, help="training images, one per row (default: 8)")
    p.add_argument("--draws", type=int, default=4, help="random training views per image (default: 4)")
    p.set_defaults(func=run)


def run(args) -> int:
    from cvpipe.analysis.preview import preview_augmentations
    from cvpipe.cli.train import split_config_and_overrides
    from cvpipe.errors import ConfigError
    from cvpipe.tasks.train import resolve_train_config

    if args.images < 1 or args.draws < 1:
        raise ConfigError("--images and --draws must be at least 1")
    config, overrides = split_config_and_overrides(args.items)
    cfg = resolve_train_config(config, overrides)  # the settings `cvpipe train` would use
    if args.out is not None:
        path = preview_augmentations(cfg, args.out, n=args.images, draws=args.draws)
    else:  # numbered like every run folder: previewing other settings must not replace the last grid
        from cvpipe.tasks.common import new_run_dir

        with new_run_dir("runs/preview", "exp") as out:
            path = preview_augmentations(cfg, out / "augmentations.png", n=args.images, draws=args.draws)
    print(f"augmentation preview written to {path}")
    mixes = [key for key in ("mixup", "cutmix") if getattr(cfg.data.augment, key) > 0]
    if mixes:  # they blend pairs of images within a training batch, after these per-image views
        print(f"note: data.augment.{'/'.join(mixes)} also blend each batch's images in pairs during training; not shown")
    return 0
