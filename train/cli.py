"""What every `python -m train...` command parses the same way (see the README's CLI table)."""

from __future__ import annotations

import argparse
from pathlib import Path

from contract.run_folder import FINISHED_RUN, SPLIT_CSV, RunFolderError, check_run_folder


def comma_list(text: str) -> list[str]:
    """One command-line list: comma-separated items, blanks dropped (`--data A,B`)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def comma_paths(text: str) -> list[Path]:
    return [Path(item) for item in comma_list(text)]


def comma_floats(text: str) -> list[float]:
    try:
        return [float(item) for item in comma_list(text)]
    except ValueError:
        message = f"expected comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def check_run_and_model(parser: argparse.ArgumentParser, run: Path, model: Path | None) -> None:
    """Usage errors for a run folder and `--model`: with a model file the run lends only its
    split.csv, without one it must be finished (its Keras model and card)."""
    try:
        check_run_folder(run, FINISHED_RUN if model is None else (SPLIT_CSV,))
    except RunFolderError as error:
        parser.error(str(error))
    if model is not None and not model.is_file():
        parser.error(f"--model {model}: no such file")
