"""cvpipe features CHECKPOINT [IMAGE] [key=value ...]"""

from __future__ import annotations

DESCRIPTION = """\
Feature maps of any layer: a grid PNG per layer with the input, the mean over channels and
the top-k channels by activation energy (mean square), each upsampled bilinearly to the input.

  layer=NAME       dotted module name(s), comma-separated (default: the model's CAM layer)
  topk=15          channels shown per layer
  device=auto      auto | cpu | cuda | cuda:N | mps
  project=runs/features name=exp   output folder (auto-incremented)

--list prints every layer with its output shape (no image needed).

Examples:
  cvpipe features runs/train/exp/weights/best.pt --list
  cvpipe features runs/train/exp/weights/best.pt digit.png layer=features.conv1,features.conv2
"""


def register(sub) -> None:
    from cvpipe.cli import formatter

    p = sub.add_parser("features", help="feature-map grids of any layer; --list shows layers and shapes",
                       description=DESCRIPTION, formatter_class=formatter)
    p.add_argument("checkpoint", help="a cvpipe checkpoint (best.pt or last.pt)")
    p.add_argument("items", nargs="*", metavar="IMAGE key=value", help="the image, then options")
    p.add_argument("--list", action="store_true", help="list layer names with output shapes and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from cvpipe.analysis.summary import format_table
    from cvpipe.cli.cam import split_items
    from cvpipe.errors import ConfigError
    from cvpipe.tasks.common import parse_options
    from cvpipe.tasks.explain import feature_maps, layers

    images, items = split_items(args.items)
    opts, _ = parse_options(items, {"layer": str, "topk": int, "device": str, "project": str, "name": str}, "features")
    if args.list:
        infos, default = layers(args.checkpoint)
        rows = [[info.name + (" *" if info.name == default else ""), info.type,
                 "-" if info.output_shape is None else str(list(info.output_shape)), f"{info.params:,}"]
                for info in infos]  # fmt: skip
        print(format_table(["layer", "type", "output shape", "params"], rows, "llrr"))
        if default:
            print(f"* default layer for cam and features: {default}")
        return 0
    if len(images) != 1:
        raise ConfigError("give exactly one image (or --list to see the layers)")
    for path in feature_maps(args.checkpoint, images[0], **opts):
        print(f"feature maps written to {path}")
    return 0
