"""cvpipe train [CONFIG] [key=value ...]"""

from __future__ import annotations

DESCRIPTION = """\
Train an image classifier.

CONFIG is a YAML file or a preset name. Without one, training on the embedded digits
(the default data, no download) uses the digits preset; training on your own data.root
starts from the generic defaults (resnet18, 224 px RGB, ImageNet statistics, SGD + cosine).
Any setting can be overridden as dotted key=value (`cvpipe config` lists them all):

  cvpipe train                                   # digits, defaults
  cvpipe train my.yaml train.epochs=30 model.name=resnet18
  cvpipe train data.root=path/to/images model.name=resnet18 model.in_chans=3
  cvpipe train resume=runs/train/exp/weights/last.pt train.epochs=50

Sections: data (data.augment), model, optim, schedule, loss, train. Unknown keys are
rejected with a suggestion. Multi-GPU: torchrun --nproc_per_node=N -m cvpipe train ...
The run folder (runs/train/<name>) receives config.yaml, train.log, metrics.csv,
weights/{last,best}.pt, curves.png and TensorBoard events.
"""


def register(sub) -> None:
    from cvpipe.cli import formatter

    p = sub.add_parser("train", help="train a classifier", description=DESCRIPTION, formatter_class=formatter)
    p.add_argument("items", nargs="*", metavar="[CONFIG] key=value", help="config file or preset, then overrides")
    p.set_defaults(func=run)


def run(args) -> int:
    from cvpipe.tasks.train import train

    config, overrides = split_config_and_overrides(args.items)
    result = train(config, overrides)
    return 0 if result.stopped in ("", "early-stop") else 1


def split_config_and_overrides(items: list[str]) -> tuple[str | None, list[str]]:
    """The first item is the config when it is not key=value."""
    if items and "=" not in items[0]:
        return items[0], items[1:]
    return None, list(items)
