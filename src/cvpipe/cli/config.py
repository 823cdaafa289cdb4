"""cvpipe config [CONFIG] [key=value ...]"""

from __future__ import annotations

DESCRIPTION = """\
Print the resolved configuration as YAML: the schema defaults, then CONFIG (a YAML file or a
preset name; default digits), then the key=value overrides, exactly as `cvpipe train` would
use them; a value train would refuse (unknown key or model, wrong type, out of range) is an
error here too. Save it to start your own config:

  cvpipe config > my.yaml
  cvpipe config data.root=photos model.name=resnet18 model.in_chans=3 > photos.yaml
"""


def register(sub) -> None:
    from cvpipe.cli import formatter

    p = sub.add_parser("config", help="print the resolved training config as YAML", description=DESCRIPTION,
                       formatter_class=formatter)
    p.add_argument("items", nargs="*", metavar="[CONFIG] key=value", help="config file or preset, then overrides")
    p.set_defaults(func=run)


def run(args) -> int:
    import yaml

    from cvpipe.cli.train import split_config_and_overrides
    from cvpipe.config import to_dict
    from cvpipe.tasks.train import check_config, resolve_train_config

    config, overrides = split_config_and_overrides(args.items)
    cfg = resolve_train_config(config, overrides)
    check_config(cfg)  # a value `cvpipe train` would refuse is refused here too
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
    return 0
