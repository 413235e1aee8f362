"""Labelled image records from the layouts we read, with their group and domain.

A record (`contract.records.Record`) is one image file. Its *group* (lesion or patient) is what
a split must keep together; its *domain* (dermoscopic or phone) is what metrics are reported
per. Images are not decoded here: a missing file is reported now, an unreadable one when it is
decoded (`contract.records.decode_records`).
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from contract.commands import CommandError
from contract.records import Record, Skipped
from contract.taxonomy import DERMOSCOPIC, LABELS, PAD_UFES20_TO_HAM, PHONE

ISIC2017_CSV = "labels.csv"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class DatasetError(CommandError, ValueError):
    """The folder is not a data set we can read."""


def _index_images(root: Path) -> dict[str, Path]:
    """Image files anywhere below root, by file stem (official releases spread them over folders
    and PAD-UFES-20 names them .png in the csv while copies may be re-encoded)."""
    index: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            index.setdefault(path.stem, path)
    return index


def _read_csv(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(required) - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{path}: missing column(s) {sorted(missing)}")
        return list(reader)


def load_ham10000(root: Path, skipped: Skipped) -> list[Record]:
    """HAM10000: `HAM10000_metadata.csv` and `<image_id>.jpg` in any folder below it."""
    return _load_dermoscopic_csv(root, "HAM10000_metadata.csv", "lesion_id", "HAM10000", skipped)


def _load_dermoscopic_csv(
    root: Path, csv_name: str, group_column: str, source: str, skipped: Skipped
) -> list[Record]:
    """A csv of `image_id` and `dx` (already the HAM10000 codes) and the column that groups
    images of one lesion, with the images in any folder below it."""
    rows = _read_csv(root / csv_name, (group_column, "image_id", "dx"))
    images = _index_images(root)
    records = []
    for row in rows:
        if row["dx"] not in LABELS:
            skipped.add(row["image_id"], f"unknown dx {row['dx']!r}")
        elif row["image_id"] not in images:
            skipped.add(root / f"{row['image_id']}.jpg", "file missing")
        else:
            records.append(
                Record(
                    path=images[row["image_id"]],
                    label=row["dx"],
                    group=f"{source}/{row[group_column]}",
                    domain=DERMOSCOPIC,
                    source=source,
                )
            )
    return records


def load_pad_ufes20(root: Path, skipped: Skipped) -> list[Record]:
    """PAD-UFES-20: `metadata.csv` and `images/`, matched by file stem whatever the extension.

    The group is the patient, shared by the full photos and their cut-outs, so both versions of a
    photo always land on the same side of a split.
    """
    rows = _read_csv(root / "metadata.csv", ("patient_id", "diagnostic", "img_id"))
    images = _index_images(root)
    records = []
    for row in rows:
        stem = Path(row["img_id"]).stem
        if row["diagnostic"] not in PAD_UFES20_TO_HAM:
            skipped.add(row["img_id"], f"unknown diagnostic {row['diagnostic']!r}")
        elif stem not in images:
            skipped.add(root / row["img_id"], "file missing")
        else:
            records.append(
                Record(
                    path=images[stem],
                    label=PAD_UFES20_TO_HAM[row["diagnostic"]],
                    group=f"PAD-UFES-20/{row['patient_id']}",
                    domain=PHONE,
                    source="PAD-UFES-20",
                )
            )
    return records


def load_isic2017(root: Path, skipped: Skipped) -> list[Record]:
    """ISIC 2017 as `../shared/data/isic2017` lays it out: `labels.csv` (`image_id, dx,
    group_id`, dx already in the HAM10000 codes) and `images/`.

    The group is `group_id`, which joins re-coloured, cropped or flipped copies and second shots
    of one lesion (across the challenge's own train/validation/test parts too): never split
    these by image.
    """
    return _load_dermoscopic_csv(root, ISIC2017_CSV, "group_id", "ISIC-2017", skipped)


def load_class_folders(root: Path, skipped: Skipped, domain: str = PHONE) -> list[Record]:
    """A user's own photos: one sub-folder per class code (`nv/`, `mel/`, ...).

    With no lesion ids, each image is its own group; put photos of one lesion in a sub-folder
    below the class folder (`mel/lesion42/a.jpg`) to keep them together.
    """
    records = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if class_dir.name not in LABELS:
            skipped.add(class_dir, f"folder name is not a class code {LABELS}")
            continue
        for path in sorted(class_dir.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                rel = path.relative_to(class_dir)
                group = rel.parts[0] if len(rel.parts) > 1 else rel.stem
                records.append(
                    Record(path, class_dir.name, f"{root.name}/{group}", domain, root.name)
                )
    return records


def load_dataset(root: str | Path, skipped: Skipped) -> list[Record]:
    """Read any supported layout, recognised by its files."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    if (root / "HAM10000_metadata.csv").is_file():
        return load_ham10000(root, skipped)
    if (root / "metadata.csv").is_file():
        return load_pad_ufes20(root, skipped)
    if (root / ISIC2017_CSV).is_file():
        return load_isic2017(root, skipped)
    if any(p.is_dir() and p.name in LABELS for p in root.iterdir()):
        return load_class_folders(root, skipped)
    raise DatasetError(
        f"{root}: no HAM10000_metadata.csv, no PAD-UFES-20 metadata.csv, no ISIC 2017 "
        f"{ISIC2017_CSV} and no class folders named {', '.join(LABELS)}"
    )


def merge_identical_images(records: list[Record]) -> list[Record]:
    """Give byte-identical images one group, so a duplicate cannot leak across a split."""
    first_group_by_digest: dict[str, str] = {}
    alias: dict[str, str] = {}
    for record in records:
        digest = hashlib.sha1(record.path.read_bytes()).hexdigest()
        here = _root(alias, record.group)
        there = _root(alias, first_group_by_digest.setdefault(digest, here))
        if here != there:
            alias[here] = there

    return [replace(r, group=_root(alias, r.group)) for r in records]


def _root(alias: dict[str, str], group: str) -> str:
    while group in alias:
        group = alias[group]
    return group


def counts(records: Iterable[Record]) -> dict[str, dict[str, int]]:
    """Images per domain and class, for the model card."""
    by_domain: dict[str, Counter] = {}
    for r in records:
        by_domain.setdefault(r.domain, Counter())[r.label] += 1
    return {d: dict(sorted(c.items())) for d, c in sorted(by_domain.items())}
