"""What every `python -m ...` command shares, in every stage: comma-separated lists, and one way
to report a failure the person running it can fix.

A library raises a `CommandError` (or a subclass: `RunFolderError`, `ModelFileError`, a recipe's
or a data set's error...) with a message that names what to fix; a command's `main`, wrapped in
`reported`, prints it as `python -m PROG: error: MESSAGE` and exits with status 2, as argparse
does for bad arguments (1 for a check the input failed). Any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
USAGE_ERROR = 2  # argparse's exit status for bad arguments; every command's for a CommandError


class CommandError(Exception):
    """A failure of the input, not of the code: a missing file, a model that is not its run's, a
    recipe field that cannot be run. The message says what to fix; `status` is the command's
    exit status (a subclass for a check the input failed, such as export.ship's, sets 1)."""

    status: int = USAGE_ERROR


def comma_list(text: str) -> list[str]:
    """One command-line list: comma-separated items, blanks dropped (`--data A,B`)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def comma_separated(item: Callable[[str], T], example: str) -> Callable[[str], list[T]]:
    """An argparse `type` for a non-empty comma-separated list of `item(part)`s; a part `item`
    cannot read (ValueError) is a usage error that shows `example`."""

    def parse(text: str) -> list[T]:
        try:
            items = [item(part) for part in comma_list(text)]
        except ValueError:
            items = []
        if not items:
            raise argparse.ArgumentTypeError(f"expected a list such as {example}, got {text!r}")
        return items

    return parse


def reported(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Wrap a command's `main(argv) -> int` so that a CommandError becomes one line on stderr,
    `python -m PROG: error: ...`, and its exit status."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except CommandError as error:
                print(f"python -m {prog}: error: {error}", file=sys.stderr)
                return error.status

        return run

    return wrap
