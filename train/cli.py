"""What every `python -m train...` command parses the same way (see the README's CLI table)."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    """Usage errors for a run folder (with split.csv) and `--model` (else the run's Keras)."""
    if not (run / "split.csv").is_file():
        parser.error(f"{run / 'split.csv'} not found; is {run} a run folder?")
    if model is not None and not model.is_file():
        parser.error(f"--model {model}: no such file")
    if model is None and not (run / "model.keras").is_file():
        parser.error(f"{run / 'model.keras'} not found and no --model given")
