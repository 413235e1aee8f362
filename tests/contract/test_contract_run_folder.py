"""contract.run_folder and contract.records: the run folder's files and the one check of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contract.records import Record, Skipped, decode_records, label_indices
from contract.run_folder import (
    FINISHED_RUN,
    SPLIT_CSV,
    RunFolderError,
    check_run_folder,
    read_split,
    write_split,
)
from contract.taxonomy import LABELS


def _record(name: str, label: str = "nv", domain: str = "phone") -> Record:
    return Record(Path(f"/data/{name}.jpg"), label, f"group/{name}", domain, "mine")


def test_the_split_reads_back_as_written(tmp_path: Path):
    split = {
        "train": [_record("a"), _record("b", "mel")],
        "val": [_record("c", "bcc", "dermoscopic")],
        "test": [],
    }
    write_split(tmp_path / SPLIT_CSV, split)
    assert read_split(tmp_path / SPLIT_CSV) == split


def test_the_check_names_the_first_missing_file_and_what_writes_it(tmp_path: Path):
    with pytest.raises(RunFolderError, match=f"{tmp_path / FINISHED_RUN[0]} not found; is "):
        check_run_folder(tmp_path)
    for name in FINISHED_RUN[:-1]:
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(RunFolderError, match=f"{SPLIT_CSV} not found.*python -m train\\)"):
        check_run_folder(tmp_path)
    (tmp_path / SPLIT_CSV).write_bytes(b"")
    check_run_folder(tmp_path)
    with pytest.raises(RunFolderError, match="written by python -m train.lesion_gate"):
        check_run_folder(tmp_path, ("lesion_gate.keras",), "python -m train.lesion_gate")


def test_unreadable_images_are_named_and_left_out(tmp_path: Path):
    Image.new("RGB", (40, 30), (200, 100, 50)).save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    good = Record(tmp_path / "good.png", "mel", "g1", "phone", "mine")
    bad = Record(tmp_path / "bad.jpg", "nv", "g2", "phone", "mine")
    skipped = Skipped()
    pixels, kept = decode_records([bad, good], 16, skipped)
    assert pixels.shape == (1, 16, 16, 3) and pixels.dtype == np.uint8
    assert kept == [good] and [what for what, _ in skipped.items] == [str(bad.path)]
    assert label_indices(kept).tolist() == [LABELS.index("mel")]
    with pytest.warns(UserWarning, match="skipped 1 image"):
        skipped.warn()
