"""``cvpipe models [PATTERN]``: list the model zoo with parameter counts."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from cvpipe.cli import formatter

    p = subparsers.add_parser(
        "models",
        help="list the model zoo with parameter counts",
        description="List every registered model, or those whose name contains PATTERN ('resnet') or matches\n"
        "it as a shell-style pattern ('resnet*', 'vgg1?'), ignoring case,\n"
        "with its parameter count. Models outside the zoo are reached as tv:<name> (torchvision)\n"
        "and timm:<name> (timm), e.g. model.name=tv:convnext_tiny; `cvpipe models tv:` and\n"
        "`cvpipe models timm:vit` list their names (without parameter counts).",
        formatter_class=formatter,
    )
    p.add_argument("pattern", nargs="?", default="*", help="a word in the name ('vit') or a shell-style pattern ('vit_*') (default: all)")
    p.add_argument("--num-classes", type=int, default=1000, help="classes the head is built for (default: 1000)")
    p.add_argument("--in-chans", type=int, default=3, help="input channels the stem is built for (default: 3)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cvpipe.errors import ConfigError
    from cvpipe.models.registry import describe_models

    if args.num_classes < 0 or args.in_chans < 1:
        raise ConfigError("--num-classes must be >= 0 and --in-chans >= 1")
    source, colon, rest = args.pattern.partition(":")
    if colon and source in ("tv", "timm"):
        return _list_external(source, rest or "*")
    rows = describe_models(args.pattern, args.num_classes, args.in_chans)
    if not rows:
        raise ConfigError(f"no model matches {args.pattern!r}; run `cvpipe models` to list them all")
    width = max(len(r["name"]) for r in rows)
    print(f"{'model':<{width}}  {'params':>12}  description")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['params']:>12,}  {r['summary']}")
    print(f"{len(rows)} model(s); also tv:<name> (torchvision) and timm:<name> (timm)")
    return 0


def _list_external(source: str, pattern: str) -> int:
    """Names of torchvision (``tv:``) or timm (``timm:``) classifiers matching ``pattern``."""
    import fnmatch

    from cvpipe.errors import ConfigError

    if source == "tv":
        import torchvision.models as tvm

        names = tvm.list_models(module=tvm)
    else:
        try:
            import timm
        except ImportError:
            raise ConfigError("timm: models need timm: pip install timm") from None
        names = timm.list_models()
    glob = pattern.lower() if any(c in pattern for c in "*?[") else f"*{pattern.lower()}*"
    found = [n for n in names if fnmatch.fnmatchcase(n.lower(), glob)]
    if not found:
        raise ConfigError(f"no {source} model matches {pattern!r}; run `cvpipe models {source}:` to list them all")
    for name in found:
        print(f"{source}:{name}")
    print(f"{len(found)} {source} model(s); use one as model.name={source}:{found[0]}")
    return 0
