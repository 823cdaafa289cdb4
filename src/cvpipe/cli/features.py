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
    from cvpipe.data.image_io import read_image
    from cvpipe.data.transforms import denormalize
    from cvpipe.errors import ConfigError
    from cvpipe.explain import list_layers
    from cvpipe.explain.api import save_feature_maps
    from cvpipe.tasks.common import device_for, increment_run_dir, load_trained, parse_options

    images, items = split_items(args.items)
    opts, _ = parse_options(items, {"layer": str, "topk": int, "device": str, "project": str, "name": str}, "features")
    trained = load_trained(args.checkpoint)
    model = trained.model.to(device_for(opts.get("device", "auto")))
    if args.list:
        height, width = trained.preprocess["image_size"]
        layers = list_layers(model, (1, trained.in_chans, height, width))
        default = getattr(model, "default_cam_layer", "")
        rows = [[info.name + (" *" if info.name == default else ""), info.type,
                 "-" if info.output_shape is None else str(list(info.output_shape)), f"{info.params:,}"]
                for info in layers]  # fmt: skip
        print(format_table(["layer", "type", "output shape", "params"], rows, "llrr"))
        if default:
            print(f"* default layer for cam and features: {default}")
        return 0
    if len(images) != 1:
        raise ConfigError("give exactly one image (or --list to see the layers)")
    x = trained.transform(read_image(images[0], mode=trained.image_mode))
    out_dir = increment_run_dir(opts.get("project", "runs/features"), opts.get("name", "exp"))
    paths = save_feature_maps(model, x, denormalize(x, trained.preprocess), out_dir, opts.get("layer"), opts.get("topk", 15))
    for path in paths:
        print(f"feature maps written to {path}")
    return 0
