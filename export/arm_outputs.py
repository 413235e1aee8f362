"""Emulated outputs kept by what they depend on: the network, the images, the machine.

Emulating the shipped files on three cores takes about an hour. A file re-shipped with a new
card or threshold (`export.card`, a re-thresholded gate) has a new sha256 but the same network,
so the same outputs: the packed files after the flatbuffer are not part of the key, and only
the decisions are computed again. The key also holds every image's bytes, where it ran (x86 or
the core) and the runtime (package versions on x86, `RuntimeSpec` on ARM).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import numpy as np

from export.arm_runtime import REPO, RuntimeSpec
from export.arm_worker import RUNTIME_PACKAGES

CACHE = REPO / "build" / "arm_outputs"  # the default; gitignored
HOST = "x86_64"


def network_bytes(model: bytes) -> bytes:
    """The flatbuffer without the files packed after it (the whole file if none are)."""
    buffer = io.BytesIO(model)
    if not zipfile.is_zipfile(buffer):
        return model
    with zipfile.ZipFile(buffer) as archive:
        start = min((info.header_offset for info in archive.infolist()), default=len(model))
    return model[:start]


def file_digests(paths: list[Path]) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def outputs_key(model: bytes, image_digests: list[str], where: str) -> str:
    """What one file's outputs on `where` depend on, as a file name."""
    if where == HOST:
        runtime = {name: version(name) for name in RUNTIME_PACKAGES}
    else:
        runtime = asdict(RuntimeSpec())
    parts = {
        "network": hashlib.sha256(network_bytes(model)).hexdigest(),
        "images": image_digests,
        "where": where,
        "runtime": runtime,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def load(key: str, folder: Path) -> dict[str, np.ndarray] | None:
    """The kept outputs, pixel digests and runtime of a key, or None."""
    path = folder / f"{key}.npz"
    return dict(np.load(path)) if path.is_file() else None


def store(key: str, entry: dict[str, np.ndarray], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{key}.partial.npz"
    np.savez(partial, **entry)
    partial.replace(folder / f"{key}.npz")
