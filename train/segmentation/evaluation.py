"""Per-image Dice and Jaccard of a segmenter on a split, with grouped bootstrap intervals, and
overlay pictures.

The bootstrap draws whole patients with replacement (`contract.bootstrap`'s group
resampling, the unit the split keeps apart) and reports the 95 % percentile interval of the
mean, the median and the 5th percentile of per-image Dice and Jaccard. Masks are compared at the
model's input size (the truth is resized the same way as the photo); threshold 0.5.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from contract.bootstrap import RESAMPLES, _group_weights
from contract.framing import NO_LESION, ONE, SEVERAL, FramingRule, find_lesions, verdict
from contract.interpreter import predict_tflite
from contract.metrics import dice_jaccard
from contract.run_folder import SPLIT_CSV, read_split
from contract.segmenter_run import read_config
from train.segmentation import dataset

STATISTICS = ("mean", "median", "p5")


def segment_tflite(model: str | Path | bytes, pixels: np.ndarray, threads: int = 2) -> np.ndarray:
    """P(lesion) per pixel (N, S, S) of a segmenter .tflite, run as the demo server runs it
    (`contract.interpreter.predict_tflite`)."""
    return predict_tflite(model, pixels, threads).reshape(pixels.shape[:3]).astype(np.float32)


def segment_keras(model, pixels: np.ndarray, batch_size: int = 16) -> np.ndarray:
    return np.asarray(model.predict(pixels.astype(np.float32), batch_size, verbose=0))[..., 0]


def weighted_statistics(values: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, median and 5th percentile of `values` under each row of integer weights."""
    order = np.argsort(values)
    sorted_values = values[order]
    cumulative = np.cumsum(weights[:, order], axis=1)
    total = cumulative[:, -1:]

    def quantile(q: float) -> np.ndarray:
        index = np.argmax(cumulative >= q * total, axis=1)
        return sorted_values[index]

    return {
        "mean": (weights @ values) / total[:, 0],
        "median": quantile(0.5),
        "p5": quantile(0.05),
    }


def summarise(
    values: np.ndarray, groups: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, dict[str, float | list[float]]]:
    """Each statistic with its 95 % interval from resampling whole groups."""
    weights = np.vstack([np.ones(len(values)), _group_weights(values, groups, resamples, seed)])
    draws = weighted_statistics(values, weights)
    return {
        name: {
            "value": float(draws[name][0]),
            "interval": [
                float(np.quantile(draws[name][1:], 0.025)),
                float(np.quantile(draws[name][1:], 0.975)),
            ],
        }
        for name in STATISTICS
    }


def verdicts(masks: np.ndarray, rule: FramingRule | None = None) -> list[str]:
    rule = rule or FramingRule()
    return [verdict(find_lesions(m, rule), rule) for m in masks]


def evaluate_arrays(
    truth: np.ndarray, probabilities: np.ndarray, groups: np.ndarray, resamples: int = RESAMPLES
) -> tuple[dict, np.ndarray, np.ndarray]:
    predicted = probabilities >= 0.5
    dice, jaccard = dice_jaccard(truth, predicted)
    true_verdicts, predicted_verdicts = verdicts(truth), verdicts(predicted)
    agreement = {
        f"{t}->{p}": sum(
            a == t and b == p for a, b in zip(true_verdicts, predicted_verdicts, strict=True)
        )
        for t in (ONE, NO_LESION, SEVERAL)
        for p in (ONE, NO_LESION, SEVERAL)
    }
    share = truth.reshape(len(truth), -1).mean(axis=1)
    by_size = {}
    for name, low, high in (("< 2 %", 0, 0.02), ("2-10 %", 0.02, 0.1), (">= 10 %", 0.1, 1.01)):
        chosen = (share >= low) & (share < high)
        if chosen.any():
            by_size[name] = {
                "photos": int(chosen.sum()),
                "dice_mean": float(dice[chosen].mean()),
                "dice_median": float(np.median(dice[chosen])),
            }
    report = {
        "photos": len(truth),
        "patients": len(set(groups)),
        "dice": summarise(dice, groups, resamples),
        "jaccard": summarise(jaccard, groups, resamples),
        "dice_below_0_5": int((dice < 0.5).sum()),
        "by_lesion_size": by_size,
        "verdicts_truth_to_predicted": {k: v for k, v in agreement.items() if v},
    }
    return report, dice, jaccard


def overlay(pixels: np.ndarray, truth: np.ndarray, predicted: np.ndarray, caption: str) -> Image:
    """The photo with the true outline in green and the predicted one in magenta."""
    image = Image.fromarray(pixels).convert("RGB")
    draw = ImageDraw.Draw(image)
    for mask, colour in ((truth, (40, 220, 40)), (predicted, (255, 0, 200))):
        edge = mask & ~_eroded(mask)
        ys, xs = np.nonzero(edge)
        for x, y in zip(xs, ys, strict=True):
            draw.point((int(x), int(y)), fill=colour)
    draw.rectangle((0, 0, image.width, 14), fill=(0, 0, 0))
    draw.text((3, 2), caption, fill=(255, 255, 255))
    return image


def _eroded(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    return out


def draw_overlays(
    images: dataset.MaskedImages, predicted: np.ndarray, dice: np.ndarray, out: Path, count: int
) -> list[Path]:
    """`count` overlays: best, median and worst Dice and evenly between, plus one grid."""
    out.mkdir(parents=True, exist_ok=True)
    order = np.argsort(dice)
    picks = order[np.linspace(0, len(order) - 1, min(count, len(order))).astype(int)][::-1]
    paths, tiles = [], []
    for rank, i in enumerate(picks):
        caption = f"Dice {dice[i]:.2f}  {images.records[i].path.stem}"
        tile = overlay(images.pixels[i], images.masks[i], predicted[i], caption)
        path = out / f"overlay_{rank:02d}.png"
        tile.save(path)
        paths.append(path)
        tiles.append(tile)
    if tiles:
        columns = 4
        size = tiles[0].width
        rows = -(-len(tiles) // columns)
        grid = Image.new("RGB", (columns * size, rows * size), (255, 255, 255))
        for k, tile in enumerate(tiles):
            grid.paste(tile, ((k % columns) * size, (k // columns) * size))
        grid.save(out / "overlays.png")
    return paths


def evaluate_run(
    run: Path, model: Path, split: str, masks_dir: Path, out: Path, overlays: int = 8
) -> dict:
    """Evaluate a .tflite (or .keras) segmenter on one split of the run; writes report.json,
    report.md, per_image.csv and overlays into `out`."""
    size = int(read_config(run)["image_size"])
    records = dataset.with_masks(read_split(run / SPLIT_CSV)[split], masks_dir)
    images = dataset.cached(records, masks_dir, run, split, size)
    if model.suffix == ".keras":
        from train.segmentation.training import load_model

        probabilities = segment_keras(load_model(model), images.pixels)
    else:
        probabilities = segment_tflite(model, images.pixels)
    groups = np.array([r.group for r in records])
    report, dice, jaccard = evaluate_arrays(images.masks, probabilities, groups)
    report = {"model": str(model), "split": split, **report}
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(markdown(report))
    with (out / "per_image.csv").open("w", encoding="utf-8") as f:
        f.write("path,group,dice,jaccard,true_area,predicted_area\n")
        for r, d, j, t, p in zip(records, dice, jaccard, images.masks, probabilities, strict=True):
            f.write(f"{r.path},{r.group},{d:.4f},{j:.4f},{t.mean():.4f},{(p >= 0.5).mean():.4f}\n")
    if overlays:
        draw_overlays(images, probabilities >= 0.5, dice, out / "overlays", overlays)
    return report


def markdown(report: dict) -> str:
    def cell(stat: dict) -> str:
        low, high = stat["interval"]
        return f"{stat['value']:.3f} ({low:.3f}-{high:.3f})"

    lines = [
        f"# Lesion segmenter on the {report['split']} split",
        "",
        f"Model `{report['model']}`; {report['photos']} phone photos with a mask, "
        f"{report['patients']} patients. In brackets: 95 % intervals from resampling whole "
        "patients (2,000 draws).",
        "",
        "| per image | mean | median | 5th percentile |",
        "|---|---:|---:|---:|",
    ]
    for name in ("dice", "jaccard"):
        stats = report[name]
        lines.append(
            f"| {name.capitalize()} | " + " | ".join(cell(stats[s]) for s in STATISTICS) + " |"
        )
    lines += ["", f"Photos with Dice below 0.5: {report['dice_below_0_5']}.", ""]
    lines += ["| true lesion size (share of photo) | photos | mean Dice | median Dice |"]
    lines += ["|---|---:|---:|---:|"]
    for name, row in report["by_lesion_size"].items():
        lines.append(
            f"| {name} | {row['photos']} | {row['dice_mean']:.3f} | {row['dice_median']:.3f} |"
        )
    lines += ["", "Framing verdicts (contract.framing), truth -> predicted:", ""]
    lines += [f"- {k}: {v}" for k, v in report["verdicts_truth_to_predicted"].items()]
    return "\n".join(lines) + "\n"
