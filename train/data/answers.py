"""The answers the data sets record for each image (age, sex, body site, symptoms).

HAM10000's csv has age, sex and body site; PAD-UFES-20's also has the symptoms a clinician asks
about. The questionnaire itself and how answers are encoded is `contract.questionnaire`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from contract.questionnaire import SYMPTOMS
from contract.records import Record


def _ham10000_answers(csv_path: Path) -> dict[str, dict[str, str]]:
    with csv_path.open(newline="", encoding="utf-8") as f:
        return {
            row["image_id"]: {
                "age": row.get("age", ""),
                "sex": row.get("sex", ""),
                "site": row.get("localization", ""),
            }
            for row in csv.DictReader(f)
        }


def _pad_ufes20_answers(csv_path: Path) -> dict[str, dict[str, str]]:
    with csv_path.open(newline="", encoding="utf-8") as f:
        return {
            Path(row["img_id"]).stem: {
                "age": row.get("age", ""),
                "sex": row.get("gender", ""),
                "site": row.get("region", ""),
                **{s: row.get(s, "") for s in SYMPTOMS},
            }
            for row in csv.DictReader(f)
        }


def dataset_answers(records: Iterable[Record]) -> list[dict[str, str]]:
    """Each record's answers from its data set's metadata csv ({} for a folder without one).

    The csv is found above the image (the layouts of `train.data.datasets`); images match by stem.
    """
    by_csv: dict[Path, dict[str, dict[str, str]]] = {}
    found = []
    for record in records:
        csv_path = _metadata_csv(record.path)
        if csv_path is not None and csv_path not in by_csv:
            reader = (
                _ham10000_answers
                if csv_path.name == "HAM10000_metadata.csv"
                else _pad_ufes20_answers
            )
            by_csv[csv_path] = reader(csv_path)
        table = by_csv.get(csv_path, {}) if csv_path is not None else {}
        found.append(table.get(record.path.stem, {}))
    return found


def _metadata_csv(image: Path) -> Path | None:
    for folder in image.parents[:2]:  # images/ or a part folder sits just below the csv
        for name in ("HAM10000_metadata.csv", "metadata.csv"):
            if (folder / name).is_file():
                return folder / name
    return None
