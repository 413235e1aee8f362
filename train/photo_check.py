"""Measure the photo check (contract.photo_check) on a split's photos, to choose its thresholds.

    python -m train.photo_check runs/shipped_2025 \
        --predictions runs/compare/after_val/predictions.csv [--split val] \
        [--segmenter models/lesion_segmenter.tflite] [--out DIR]

For the uncut phone photos and the dermoscopic images of the split, separately: the measures'
percentiles, how often each check of `contract.photo_check.RULE` fires, and the top-1 accuracy
and triage (the predictions.csv of `train.evaluate` on the same split) of the photos it flags
against the rest; and how often it fires on copies made worse on purpose (Gaussian blur, darker,
brighter: the retakes it is for). Background-removed cut-outs are left out: no camera sends one.
Writes photo_check.json and photo_check.md under --out (default RUN/photo_check).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from contract.commands import reported
from contract.framing import ONE, frame
from contract.images import open_upright_rgb, resize_to_input
from contract.interpreter import predict_tflite
from contract.lesion_gate import is_cutout
from contract.model_file import read_model_file
from contract.photo_check import REASONS, RULE, PhotoMeasures, check, measure
from contract.predictions import read_predictions
from contract.records import Record
from contract.run_folder import SPLIT_CSV, RunFolderError, check_run_folder, read_split
from contract.screening import malignant_probability, refer
from contract.segmentation import probability_map, read_segmenter_info
from contract.taxonomy import DOMAINS, LABELS, MALIGNANT

PROG = "train.photo_check"
PERCENTILES = (0, 1, 5, 10, 50, 90, 99, 100)
# Tables written before 2026-12-07 keep 6 decimals: P(malignant), a sum of three, is off by up
# to 1.5e-6 there (a photo exactly at the threshold, which val chose, would read as not referred)
ROUNDING = 1.5e-6
CUTOUT_SIZE = 128  # the size contract.lesion_gate.is_cutout was measured at
MEASURES = ("sharpness", "brightness", "shadows", "highlights", "area_fraction")
DEGRADED: dict[str, Callable[[Image.Image], Image.Image]] = {
    "gaussian blur radius 4": lambda im: im.filter(ImageFilter.GaussianBlur(4)),
    "gaussian blur radius 12": lambda im: im.filter(ImageFilter.GaussianBlur(12)),
    "brightness x 0.5": lambda im: ImageEnhance.Brightness(im).enhance(0.5),
    "brightness x 0.25": lambda im: ImageEnhance.Brightness(im).enhance(0.25),
    "brightness x 2": lambda im: ImageEnhance.Brightness(im).enhance(2.0),
}


def uncut(records: list[Record]) -> dict[str, tuple[list[Record], list[Image.Image]]]:
    """The split's photos per domain, decoded, without the background-removed cut-outs (told by
    their pixels, `contract.lesion_gate.is_cutout`, as every other step tells them)."""
    images = [open_upright_rgb(r.path)[0] for r in records]
    small = [resize_to_input(im, CUTOUT_SIZE, CUTOUT_SIZE) for im in images]
    photos = ~is_cutout(np.stack(small)) if small else np.zeros(0, bool)
    kept = {domain: [] for domain in DOMAINS}
    for record, image, photo in zip(records, images, photos, strict=True):
        if photo:
            kept[record.domain].append((record, image))
    return {
        domain: ([r for r, _ in pairs], [im for _, im in pairs]) for domain, pairs in kept.items()
    }


def area_fractions(images: list[Image.Image], segmenter: bytes) -> list[float | None]:
    """The segmenter's area fraction of each photo where it finds one spot (else None)."""
    info = read_segmenter_info(segmenter)
    size = info.image_size
    pixels = np.stack([resize_to_input(im, size, size) for im in images])
    fractions: list[float | None] = []
    for output, image in zip(predict_tflite(segmenter, pixels), images, strict=True):
        framing = frame(probability_map(output, size), image.width, image.height, info.rule)
        fractions.append(framing.area_fraction if framing.verdict == ONE else None)
    return fractions


def read_outcomes(path: Path) -> dict[str, tuple[bool, bool, bool]]:
    """path -> (top-1 correct, malignant, referred) from a train.evaluate predictions.csv."""
    rows = {}
    for row in read_predictions(path):
        if row.threshold is None:
            raise ValueError(f"{path}: a table without thresholds (written before 2026-12-06)")
        p_malignant = float(malignant_probability(np.array(row.probabilities), LABELS, MALIGNANT))
        rows[row.path] = (
            LABELS[int(np.argmax(row.probabilities))] == row.label,
            row.label in MALIGNANT,
            bool(refer(p_malignant, row.threshold - ROUNDING)),
        )
    return rows


def outcome(rows: list[tuple[bool, bool, bool]]) -> dict[str, float | int | None]:
    """Top-1 accuracy, malignant sensitivity and benign specificity of some photos."""
    malignant = [referred for _, is_malignant, referred in rows if is_malignant]
    benign = [not referred for _, is_malignant, referred in rows if not is_malignant]

    def share(values: list[bool]) -> float | None:
        return round(sum(values) / len(values), 3) if values else None

    return {
        "images": len(rows),
        "accuracy": share([correct for correct, _, _ in rows]),
        "malignant": len(malignant),
        "sensitivity": share(malignant),
        "specificity": share(benign),
    }


def domain_report(
    records: list[Record],
    images: list[Image.Image],
    segmenter: bytes,
    predictions: dict[str, tuple[bool, bool, bool]],
) -> dict:
    measures = [measure(im) for im in images]
    fractions = area_fractions(images, segmenter)
    checks = [check(m, a) for m, a in zip(measures, fractions, strict=True)]
    values = {name: [getattr(m, name) for m in measures] for name in MEASURES[:-1]}
    values["area_fraction"] = [a for a in fractions if a is not None]
    known = [predictions.get(str(r.path)) for r in records]
    flagged = [k for k, c in zip(known, checks, strict=True) if k and c.retake]
    rest = [k for k, c in zip(known, checks, strict=True) if k and not c.retake]
    return {
        "images": len(records),
        "with_predictions": sum(k is not None for k in known),
        "one_spot": len(values["area_fraction"]),
        "percentiles": {
            name: dict(
                zip(
                    map(str, PERCENTILES),
                    np.percentile(v, PERCENTILES).round(4).tolist(),
                    strict=True,
                )
            )
            for name, v in values.items()
            if v
        },
        "fires": {reason: sum(reason in c.reasons for c in checks) for reason in REASONS},
        "fires_any": sum(c.retake for c in checks),
        "flagged": outcome(flagged),
        "rest": outcome(rest),
        "degraded": {name: _fires_on(images, make, fractions) for name, make in DEGRADED.items()},
    }


def _fires_on(
    images: list[Image.Image], make: Callable[[Image.Image], Image.Image], fractions: list
) -> dict[str, int]:
    """How often each check fires on worsened copies (the spot's size kept: not re-segmented)."""
    measures: list[PhotoMeasures] = [measure(make(im)) for im in images]
    checks = [check(m, a) for m, a in zip(measures, fractions, strict=True)]
    return {"any": sum(c.retake for c in checks)} | {
        reason: sum(reason in c.reasons for c in checks) for reason in REASONS
    }


def markdown(result: dict) -> str:
    lines = [
        f"Photo check on the {result['split']} split of `{result['run']}` (uncut photos), rule "
        f"`{result['rule']}`; predictions `{result['predictions']}`.",
        "",
    ]
    for domain, r in result["domains"].items():
        lines += [f"## {domain}: {r['images']} photos ({r['one_spot']} with one spot found)", ""]
        lines += ["| measure | " + " | ".join(f"p{p}" for p in PERCENTILES) + " |"]
        lines += ["|---|" + "---:|" * len(PERCENTILES)]
        for name, row in r["percentiles"].items():
            lines += [f"| {name} | " + " | ".join(f"{v:g}" for v in row.values()) + " |"]
        fires = ", ".join(f"{k} {v}" for k, v in r["fires"].items())
        lines += ["", f"Fires on {r['fires_any']} of {r['images']} ({fires}).", ""]
        lines += ["| photos | images | top-1 accuracy | malignant | sensitivity | specificity |"]
        lines += ["|---|---:|---:|---:|---:|---:|"]
        for name in ("flagged", "rest"):
            o = r[name]
            lines += [
                f"| {name} | {o['images']} | {o['accuracy']} | {o['malignant']} | "
                f"{o['sensitivity']} | {o['specificity']} |"
            ]
        lines += ["", "| worsened copies | fires (any) | " + " | ".join(REASONS) + " |"]
        lines += ["|---|---:|" + "---:|" * len(REASONS)]
        for name, counts in r["degraded"].items():
            lines += [
                f"| {name} | {counts['any']} of {r['images']} | "
                + " | ".join(str(counts[k]) for k in REASONS)
                + " |"
            ]
        lines += [""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m {PROG}", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run", type=Path, help="a run folder with split.csv")
    parser.add_argument(
        "--predictions",
        type=Path,
        required=True,
        help="predictions.csv of train.evaluate on the same split (accuracy of flagged photos)",
    )
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--segmenter", type=Path, default=Path("models/lesion_segmenter.tflite"))
    parser.add_argument("--out", type=Path, help="default: RUN/photo_check")
    args = parser.parse_args(argv)
    try:
        check_run_folder(args.run, (SPLIT_CSV,))
    except RunFolderError as error:
        parser.error(str(error))
    if not args.predictions.is_file():
        parser.error(f"no predictions file {args.predictions}")
    return args


@reported(PROG)
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    segmenter = read_model_file(args.segmenter, "segmenter")  # a ModelFileError is reported
    predictions = read_outcomes(args.predictions)
    records = read_split(args.run / SPLIT_CSV)[args.split]
    result = {
        "run": str(args.run),
        "split": args.split,
        "predictions": str(args.predictions),
        "rule": asdict(RULE),
        "domains": {
            domain: domain_report(rs, images, segmenter, predictions)
            for domain, (rs, images) in uncut(records).items()
            if rs
        },
    }
    out = args.out or args.run / "photo_check"
    out.mkdir(parents=True, exist_ok=True)
    (out / "photo_check.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "photo_check.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
