"""What every `python -m train...` command parses the same way (see the README's CLI table)."""

from __future__ import annotations

import argparse
from pathlib import Path

from contract.run_folder import FINISHED_RUN, SPLIT_CSV, RunFolderError, check_run_folder
from train.model.devices import (
    ENV_COORDINATOR,
    ENV_PROCESS_ID,
    ENV_PROCESSES,
    Cluster,
    DeviceError,
    cluster,
)


def check_run_and_model(parser: argparse.ArgumentParser, run: Path, model: Path | None) -> None:
    """Usage errors for a run folder and `--model`: with a model file the run lends only its
    split.csv, without one it must be finished (its Keras model and card)."""
    try:
        check_run_folder(run, FINISHED_RUN if model is None else (SPLIT_CSV,))
    except RunFolderError as error:
        parser.error(str(error))
    if model is not None and not model.is_file():
        parser.error(f"--model {model}: no such file")


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """--coordinator, --processes, --process-id: one training over several hosts (JAX,
    docs/backends.md); each flag not given is read from Keras's variable in brackets."""
    group = parser.add_argument_group(
        "several hosts (KERAS_BACKEND=jax)",
        "run the same command on every host, with its own --process-id and --out",
    )
    group.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help=f"process 0's address, where it listens for the others [{ENV_COORDINATOR}]",
    )
    group.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help=f"how many processes (hosts) train together; 1: this host alone [{ENV_PROCESSES}]",
    )
    group.add_argument(
        "--process-id",
        type=int,
        metavar="I",
        help=f"this process's number, 0 to N-1 [{ENV_PROCESS_ID}]",
    )


def parse_cluster(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Cluster:
    """The cluster of `add_cluster_arguments`'s flags and the environment; usage errors."""
    try:
        return cluster(args.coordinator, args.processes, args.process_id)
    except DeviceError as error:
        parser.error(str(error))
