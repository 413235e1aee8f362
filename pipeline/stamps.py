"""Whether a step's output is complete and current: a stamp per step in OUT/.stamps/.

A step's stamp records the hash of its recipe section and of every input file (folders: every
file below them) as they were when its outputs were written. The step is done when each of
its outputs exists and a fresh hash of the same things equals the stamp's; a retrained member,
an edited section or a changed split makes it and every step reading its outputs stale.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

STAMPS = ".stamps"
_CHUNK = 1 << 20


def _file_digest(path: Path, digest: hashlib._Hash) -> None:
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)


def fingerprint(settings: object, inputs: Iterable[Path]) -> str | None:
    """The hash of `settings` (as JSON) and the inputs' bytes; None while an input is missing."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in inputs:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        if not path.exists():
            return None
        for file in files:
            digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
            _file_digest(file, digest)
    return digest.hexdigest()


def stamp_path(out: Path, step: str) -> Path:
    return out / STAMPS / f"{step}.json"


def read_stamp(out: Path, step: str) -> str | None:
    path = stamp_path(out, step)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("fingerprint")


def write_stamp(out: Path, step: str, key: str, outputs: Iterable[Path]) -> None:
    path = stamp_path(out, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"fingerprint": key, "outputs": [str(p) for p in outputs]}
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def forget(out: Path, step: str) -> None:
    stamp_path(out, step).unlink(missing_ok=True)
