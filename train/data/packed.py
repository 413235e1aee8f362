"""A packed data file: a split's images, decoded and resized once, with their records.

To train where the image folders are not (a borrowed GPU machine), `python -m train.pack`
writes one `.npz` file holding, for every record of a split.csv, its split, path, label, group,
domain and source, and the image as `contract.images.model_input` decodes it at one size,
compressed as JPEG (or PNG, lossless). `python -m train --packed FILE` reads the images from
there instead of the folders; everything else (the run's split.csv, the batches, the model
card) is as if it had read the folders. JPEG changes pixels a little (a PNG file changes none,
and gives bit-identical batches), so the packed images are not the exact pixels of the folders.

The file holds plain arrays only (`numpy.load(..., allow_pickle=False)`): `encoded` (every
image's bytes, end to end), `offsets`, one string array per record field, and a few scalars.
An image that could not be decoded when packing has no bytes and its reason in `skipped`, so
training skips and names it exactly as when it reads the folders.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from contract.commands import CommandError
from contract.images import model_input
from contract.records import Record, Skipped
from contract.run_folder import SPLITS

FORMAT_VERSION = 1
CODECS = ("jpeg", "png")
_FIELDS = ("split", "path", "label", "group", "domain", "source")


class PackedError(CommandError, ValueError):
    """Not a packed data file this version reads."""


def _encode(pixels: np.ndarray, codec: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if codec == "jpeg":
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    else:
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def pack(
    splits: dict[str, list[Record]],
    size: int,
    out: Path,
    codec: str = "jpeg",
    quality: int = 75,
    workers: int = 4,
    only: Sequence[str] = SPLITS,
) -> dict:
    """Write the records of `only` (splits) of `splits` with their images at `size` to `out`
    (an .npz file); returns a summary (images, skipped, bytes)."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}")
    records = [(name, r) for name in SPLITS if name in only for r in splits.get(name, [])]

    def encode(record: Record) -> tuple[bytes, str]:
        try:
            return _encode(model_input(record.path, size), codec, quality), ""
        except (OSError, ValueError) as error:
            return b"", f"unreadable image ({error})"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        encoded = list(pool.map(encode, (r for _, r in records)))
    blobs = [b for b, _ in encoded]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    columns = {
        "split": [name for name, _ in records],
        **{f: [str(getattr(r, f)) for _, r in records] for f in _FIELDS[1:]},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        np.savez(
            f,
            format_version=np.int64(FORMAT_VERSION),
            image_size=np.int64(size),
            codec=np.str_(codec),
            quality=np.int64(quality if codec == "jpeg" else 0),
            encoded=np.frombuffer(b"".join(blobs), np.uint8),
            offsets=offsets,
            skipped=np.array([reason for _, reason in encoded], dtype=np.str_),
            **{k: np.array(v, dtype=np.str_) for k, v in columns.items()},
        )
    return {
        "images": sum(1 for b in blobs if b),
        "skipped": sum(1 for b in blobs if not b),
        "bytes": out.stat().st_size,
    }


class PackedImages:
    """A packed data file, read: its split (records) and each split's decoded pixels."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as error:
            raise PackedError(f"{self.path}: not a packed data file ({error})") from None
        if int(arrays.get("format_version", -1)) != FORMAT_VERSION:
            raise PackedError(
                f"{self.path}: not a packed data file of format {FORMAT_VERSION} "
                "(write it again with python -m train.pack)"
            )
        self.image_size = int(arrays["image_size"])
        self.codec = str(arrays["codec"])
        self.quality = int(arrays["quality"])
        self._encoded = arrays["encoded"]
        self._offsets = arrays["offsets"]
        self._skipped = arrays["skipped"]
        self._columns = {f: arrays[f] for f in _FIELDS}

    def __len__(self) -> int:
        return len(self._columns["split"])

    def _record(self, i: int) -> Record:
        c = self._columns
        return Record(
            Path(str(c["path"][i])), str(c["label"][i]), str(c["group"][i]), str(c["domain"][i]),
            str(c["source"][i]),
        )  # fmt: skip

    def _rows(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self._columns["split"]) if s == split]

    def splits(self) -> dict[str, list[Record]]:
        """The split, as `contract.run_folder.read_split` gives it (splits not packed are empty)."""
        return {name: [self._record(i) for i in self._rows(name)] for name in SPLITS}

    def pixels(
        self, split: str, skipped: Skipped, workers: int = 4
    ) -> tuple[np.ndarray, list[Record]]:
        """Decoded images of one split and their records, as `contract.records.decode_records`
        returns them; images unreadable when packed are added to `skipped` and left out."""
        rows = []
        for i in self._rows(split):
            if self._skipped[i]:
                skipped.add(str(self._columns["path"][i]), str(self._skipped[i]))
            else:
                rows.append(i)

        def decode(i: int) -> np.ndarray:
            blob = self._encoded[self._offsets[i] : self._offsets[i + 1]].tobytes()
            return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))

        with ThreadPoolExecutor(max_workers=workers) as pool:
            arrays = list(pool.map(decode, rows))
        size = self.image_size
        pixels = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)
        return pixels, [self._record(i) for i in rows]
