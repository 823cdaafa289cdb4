"""The ``cvpipe`` command: each subcommand parses its arguments, then calls one library function.

Subcommands live one per module in this package; each module defines ``register(subparsers)``
which adds its parser and sets ``func`` to a callable taking the parsed namespace and returning
an exit status. Errors the user can fix (:class:`cvpipe.errors.CvpipeError`) print one line and
exit 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from cvpipe.errors import CvpipeError

# Order here is the order in `cvpipe --help`.
COMMAND_MODULES = [
    # classification: data -> training -> evaluation -> prediction
    "train",
    "evaluate",  # `cvpipe eval`
    "predict",
    "export",
    "config",
    "preview",
    "dataset_report",  # `cvpipe dataset-report`
    # models: zoo, explanation, analysis
    "models",
    "cam",
    "features",
    "profile",
    # detection datasets and evaluation
    "convert",
    "check_detection",  # `cvpipe check-detection`
    "det_eval",  # `cvpipe det-eval`
]


def build_parser() -> argparse.ArgumentParser:
    from cvpipe import __version__

    parser = argparse.ArgumentParser(
        prog="cvpipe",
        description="From a folder of images to a trained, evaluated, explained and exported vision model.",
        epilog="Settings are overridden with dotted key=value pairs, e.g. `cvpipe train train.epochs=5`. "
        "Run `cvpipe CMD --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"cvpipe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"cvpipe.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe (`cvpipe models | head`) is met here, not at exit
        return code
    except BrokenPipeError:
        # The reader stopped listening: not an error of ours. Point stdout at devnull so the
        # interpreter's final flush cannot print a traceback; 141 = killed by SIGPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except CvpipeError as e:
        if args.debug:
            raise
        print(f"cvpipe {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cvpipe {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(error: CvpipeError) -> str:
    """The message of ``error``; for one raised in a DataLoader worker, which PyTorch re-raises
    with the worker's whole traceback as the message, only the original message."""
    text = str(error)
    if "Original Traceback" not in text:
        return text
    last = text.rstrip().splitlines()[-1]  # "cvpipe.errors.DataError: <message>"
    return last.split(": ", 1)[1] if last.startswith("cvpipe.") and ": " in last else last


def formatter(prog: str) -> argparse.HelpFormatter:
    """Help formatter shared by subcommands: keeps the line breaks written in descriptions."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)
