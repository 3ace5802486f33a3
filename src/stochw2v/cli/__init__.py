"""The `stochw2v` command line: one subcommand per stage of the pipeline.

Errors the user can fix (a bad file, value or setting: `Stochw2vError`) print one line naming the
thing and exit with 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import Stochw2vError
from . import data_commands, eval_commands, model_commands, serve_commands, train_commands

COMMAND_GROUPS = (model_commands, data_commands, train_commands, eval_commands, serve_commands)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage is one `--help` away), exit code 2 as before."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="stochw2v", description="Stochastic wav2vec 2.0: speech encoders whose "
                                     "compute is chosen per call.")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except Stochw2vError as error:
        print(f"stochw2v {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the file system said no (a name too long, a full disk, no permission)
        where = f"{_shorten(error.filename)}: " if error.filename else ""
        print(f"stochw2v {args.command}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stochw2v {args.command}: interrupted", file=sys.stderr)
        return 130


def _shorten(name: object, limit: int = 160) -> str:
    text = str(name)
    return text if len(text) <= limit else f"{text[:80]}...{text[-40:]} ({len(text)} characters)"


__all__ = ["build_parser", "main"]
