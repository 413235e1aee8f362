"""Does cropping phone photos around the predicted lesion help the shipped classifier?

For every phone photo of one split of the segmenter's run (default val), the classifier .tflite
is run twice, on the whole photo and on the crop around the lesion the segmenter .tflite finds
(`contract.framing.frame`: only when it finds one lesion; a photo with none or several is
classified whole both times, as the server would). Both are calibrated with the classifier's
card (temperature; the phone photos' own triage threshold, as a request stating the kind gets)
and compared image by image with the paired grouped bootstrap of `train.compare`
(`contract.bootstrap.paired_difference_intervals`).

Which photos can judge it: the shipped classifier's own split cannot be remade (docs/history/
experiments.md), so some photos of a new split were in its training data; on those the whole
photo is what it memorised and the crop is new to it, which favours "no crop". The photos of the
patients in the classifier's test split (the test rows of its split.csv; for the shipped one,
recipes/shipped_2025_split.csv) are known unseen; the segmenter's training pins them to val, so
the decision is taken on them ("unseen"), and the whole split is reported beside it. Rule, fixed
before measuring: ship the crop only if, on the unseen photos, the 95 % interval of the
balanced-accuracy difference (crop - whole) is above 0 and the malignant sensitivity does not
drop.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from contract.bootstrap import paired_difference_intervals
from contract.colour_constancy import apply, step_of
from contract.framing import ONE, crop, frame
from contract.images import open_upright_rgb, resize_to_input
from contract.interpreter import predict_tflite
from contract.model_file import model_card, read_model_file
from contract.predictions import PREDICTIONS_CSV, prediction_rows, write_predictions
from contract.run_folder import read_split
from contract.screening import apply_temperature
from contract.segmentation import read_segmenter_info
from contract.taxonomy import LABELS, PHONE
from train.segmentation.dataset import classifier_test_photos
from train.segmentation.evaluation import segment_tflite

METRICS = ("balanced_accuracy", "malignant_sensitivity", "malignant_specificity")


def measure_framing(
    run: Path,
    segmenter: Path,
    classifier: Path,
    split: str,
    classifier_split: Path,
    out: Path,
) -> dict:
    records = [r for r in read_split(run / "split.csv")[split] if r.domain == PHONE]
    seg_bytes = read_model_file(segmenter, "segmenter")
    seg_info = read_segmenter_info(seg_bytes)
    card = model_card(read_model_file(classifier))
    if card.labels != LABELS:
        raise ValueError(f"classifier labels {card.labels} are not {LABELS}")
    size = card.input.height
    temperature = card.calibration.temperature
    threshold = card.triage.thresholds.for_domain(PHONE)

    images = [open_upright_rgb(r.path)[0] for r in records]
    seg_pixels = np.stack(
        [resize_to_input(im, seg_info.image_size, seg_info.image_size) for im in images]
    )
    probabilities = segment_tflite(seg_bytes, seg_pixels)
    framings = [
        frame(p, im.width, im.height, seg_info.rule)
        for p, im in zip(probabilities, images, strict=True)
    ]
    step = step_of(card)  # the classifier's own colour-constancy step, as every client feeds it
    whole = apply(np.stack([resize_to_input(im, size, size) for im in images]), step)
    cropped = np.stack(
        [
            resize_to_input(crop(im, f.crop if f.verdict == ONE else None), size, size)
            for im, f in zip(images, framings, strict=True)
        ]
    )
    cropped = apply(cropped, step)
    raw_whole = predict_tflite(classifier, whole)
    raw_cropped = predict_tflite(classifier, cropped)
    probs_whole = apply_temperature(raw_whole, temperature)
    probs_cropped = apply_temperature(raw_cropped, temperature)

    unseen_patients = {r.group for r in classifier_test_photos(classifier_split)}
    labels = np.array([LABELS.index(r.label) for r in records])
    groups = np.array([r.group for r in records])
    unseen = np.array([r.group in unseen_patients for r in records])
    verdicts = [f.verdict for f in framings]
    result = {
        "split": split,
        "segmenter": str(segmenter),
        "classifier": str(classifier),
        "rule": {
            "margin": seg_info.rule.margin,
            "min_side_fraction": seg_info.rule.min_side_fraction,
        },
        "photos": len(records),
        "unseen_photos": int(unseen.sum()),
        "verdicts": {v: verdicts.count(v) for v in sorted(set(verdicts))},
        "cropped": int(sum(v == ONE for v in verdicts)),
        "crop_side_share_of_photo": _quantiles(
            [
                f.crop.width / min(im.width, im.height)
                for f, im in zip(framings, images, strict=True)
                if f.crop
            ]
        ),
        "temperature": temperature,
        "threshold": threshold,
        "scopes": {},
    }
    for scope, chosen in (
        ("unseen by the classifier", unseen),
        (f"all {split} phone photos", np.ones_like(unseen)),
    ):
        if chosen.sum() < 2:
            continue
        comparison = paired_difference_intervals(
            labels[chosen],
            groups[chosen],
            (probs_whole[chosen], threshold),
            (probs_cropped[chosen], threshold),
        )
        result["scopes"][scope] = {
            "n": int(chosen.sum()),
            "patients": len(set(groups[chosen])),
            **comparison,
        }
    decision_scope = result["scopes"].get("unseen by the classifier")
    if decision_scope is None:
        result["ship_crop"] = False
        result["decision"] = "no unseen photos in this split: nothing to decide on"
    else:
        ba, sens = decision_scope["balanced_accuracy"], decision_scope["malignant_sensitivity"]
        result["ship_crop"] = bool(ba["interval"][0] > 0 and sens["difference"] >= 0)
        result["decision"] = (
            "ship the crop"
            if result["ship_crop"]
            else "do not ship the crop: the balanced-accuracy gain's interval "
            f"({ba['interval'][0]:+.3f} to {ba['interval'][1]:+.3f}) is not above 0"
            + ("" if sens["difference"] >= 0 else " and malignant sensitivity drops")
        )
    out.mkdir(parents=True, exist_ok=True)
    for name, probs in (("whole", probs_whole), ("cropped", probs_cropped)):  # train.compare input
        folder = out / name
        folder.mkdir(exist_ok=True)
        uncut, shared = np.zeros(len(records), bool), np.full(len(records), threshold)
        write_predictions(folder / PREDICTIONS_CSV, prediction_rows(records, probs, uncut, shared))
        (folder / "metrics.json").write_text(json.dumps({"malignant_threshold": threshold}) + "\n")
    with (out / "framing_per_image.csv").open("w", encoding="utf-8") as f:
        f.write("path,group,label,unseen,verdict,crop,top_whole,top_cropped\n")
        for r, u, fr, a, b in zip(
            records, unseen, framings, probs_whole, probs_cropped, strict=True
        ):
            box = (
                ""
                if fr.crop is None or fr.verdict != ONE
                else f"{fr.crop.left} {fr.crop.top} {fr.crop.width} {fr.crop.height}"
            )
            f.write(
                f"{r.path},{r.group},{r.label},{int(u)},{fr.verdict},{box},"
                f"{LABELS[a.argmax()]},{LABELS[b.argmax()]}\n"
            )
    (out / "framing.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "framing.md").write_text(markdown(result))
    return result


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        q: float(np.quantile(values, x)) for q, x in (("p10", 0.1), ("median", 0.5), ("p90", 0.9))
    }


def markdown(result: dict) -> str:
    lines = [
        f"# Framing: the shipped classifier on whole vs cropped phone photos ({result['split']})",
        "",
        f"Classifier `{result['classifier']}`, segmenter `{result['segmenter']}`. "
        f"{result['photos']} phone photos; segmenter verdicts {result['verdicts']}; "
        f"{result['cropped']} cropped (one lesion found), the rest classified whole both times. "
        f"Crop side as a share of the photo's shorter side: {result['crop_side_share_of_photo']}.",
        "",
        "Each cell: whole -> cropped, then cropped - whole with its 95 % interval from resampling "
        "whole patients (paired, 2,000 draws).",
        "",
        "| photos | n (patients) | balanced accuracy | malignant sensitivity "
        "| malignant specificity |",
        "|---|---:|---:|---:|---:|",
    ]
    for scope, row in result["scopes"].items():
        cells = [
            f"{row[m]['a']:.3f} -> {row[m]['b']:.3f}: {row[m]['difference']:+.3f} "
            f"({row[m]['interval'][0]:+.3f} to {row[m]['interval'][1]:+.3f})"
            for m in METRICS
        ]
        lines.append(f"| {scope} | {row['n']} ({row['patients']}) | " + " | ".join(cells) + " |")
    lines += ["", f"Decision: **{result['decision']}**.", ""]
    return "\n".join(lines)
