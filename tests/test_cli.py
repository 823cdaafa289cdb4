"""The command line: every command and option documented, and help that starts at once."""

import argparse
import subprocess
import sys

import pytest

from cvpipe.cli import build_parser, main


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    commands = _subcommands()
    assert {"train", "eval", "predict", "cam", "profile", "convert", "det-eval"} <= set(commands)
    assert all(f"    {name}" in out for name in commands), out


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_option_of_every_command_has_help(command, capsys):
    parser = _subcommands()[command]
    undocumented = [a.dest for a in parser._actions if not isinstance(a, argparse._HelpAction) and not a.help]
    assert undocumented == [], f"cvpipe {command}: {undocumented} have no help text"
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0 and f"usage: cvpipe {command}" in capsys.readouterr().out


def test_building_the_parser_imports_no_torch():
    # `cvpipe --help` and argument errors answer at once instead of after importing torch (~2 s)
    code = "import sys, cvpipe.cli; cvpipe.cli.build_parser(); print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
