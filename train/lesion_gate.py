"""Fit the "not a skin lesion" gate: a one-class Mahalanobis detector on ImageNet features.

    python -m train.lesion_gate runs/NAME [--image-size 128] [--components 768]

No negative training data exists, so the gate models lesion photos only: pretrained
EfficientNet-Lite0 pooled features, L2-normalised, are whitened by PCA (with shrinkage towards
the mean eigenvalue) fitted on the run's train split; the squared distance of a new image from
the lesion mean is compared with a threshold chosen on the val split. The whole computation is
one Keras model (backbone -> unit norm -> Dense whitening -> squares -> Dense of ones), so the
phone runs a single .tflite and compares one number.

Measured on our data (see the JSON): few principal components (32-128) do not work, because
non-skin images differ from lesions mostly in the minor directions; L2 normalisation is needed
because blank frames give weak features that sit near the lesion mean.

Writes runs/NAME/lesion_gate.keras and runs/NAME/lesion_gate.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from train.datasets import Record, Skipped
from train.efficientnet_lite0 import build_efficientnet_lite0
from train.images import decode_records
from train.predict import predict_keras
from train.split import SPLIT_CSV, read_split
from train.subset import take_per_class

GATE_KERAS = "lesion_gate.keras"
GATE_JSON = "lesion_gate.json"
DISTANCE = "squared Mahalanobis distance"


@dataclass(frozen=True)
class GateConfig:
    """How the gate is fitted; the defaults are what the shipped gate uses."""

    image_size: int = 128
    components: int = 768
    shrinkage: float = 0.3  # weight of the mean eigenvalue blended into the covariance
    max_images: int = 10_000  # more than the train split: fit on all of it
    seed: int = 0
    # Per-domain share of val lesion photos allowed above the threshold (target: <= 2 %).
    val_false_rejection: float = 0.01

    def __post_init__(self) -> None:
        if self.image_size < 32 or not 1 <= self.components <= 1280:
            raise ValueError(f"bad image size {self.image_size} or components {self.components}")
        if not 0 <= self.shrinkage < 1 or not 0 < self.val_false_rejection < 0.5:
            raise ValueError("shrinkage must be in [0, 1) and val_false_rejection in (0, 0.5)")


def choose_threshold(distances: np.ndarray, domains: np.ndarray, false_rejection: float) -> float:
    """The largest per-domain (1 - false_rejection) quantile: no domain rejects more."""
    return float(
        max(np.quantile(distances[domains == d], 1 - false_rejection) for d in set(domains))
    )


def false_rejections(distances: np.ndarray, domains: np.ndarray, threshold: float) -> dict:
    """Share of lesion photos above the threshold, per domain and overall."""
    rates = {d: float(np.mean(distances[domains == d] > threshold)) for d in sorted(set(domains))}
    return {**rates, "overall": float(np.mean(distances > threshold))}


def _whitening(features: np.ndarray, components: int, shrinkage: float) -> tuple:
    """(W, mean): W projects centred features on the top principal axes, scaled to unit variance."""
    mean = features.mean(axis=0)
    cov = np.cov(features - mean, rowvar=False)
    cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / len(cov) * np.eye(len(cov))
    eigenvalues, eigenvectors = np.linalg.eigh(cov)  # ascending
    top = np.argsort(eigenvalues)[::-1][:components]
    return eigenvectors[:, top] / np.sqrt(eigenvalues[top]), mean


def build_gate(backbone: keras.Model, whitening: np.ndarray, mean: np.ndarray) -> keras.Model:
    """Backbone -> unit norm -> (x - mean) W -> sum of squares, output (batch, 1) "distance"."""
    features = keras.layers.UnitNormalization(name="unit_norm")(backbone.output)
    whiten = keras.layers.Dense(whitening.shape[1], name="whiten")
    z = whiten(features)
    squares = keras.layers.Multiply(name="squares")([z, z])
    total = keras.layers.Dense(1, use_bias=False, name="distance")
    distance = total(squares)
    whiten.set_weights([whitening.astype(np.float32), (-mean @ whitening).astype(np.float32)])
    total.set_weights([np.ones((whitening.shape[1], 1), np.float32)])
    return keras.Model(backbone.input, distance, name="lesion_gate")


def _decode(records: list[Record], size: int) -> tuple[np.ndarray, list[Record]]:
    skipped = Skipped()
    pixels, kept = decode_records(records, size, skipped)
    skipped.warn()
    return pixels, kept


def fit_lesion_gate(
    split_csv: Path,
    image_size: int = GateConfig.image_size,
    components: int = GateConfig.components,
    max_images: int = GateConfig.max_images,
    seed: int = GateConfig.seed,
) -> tuple[keras.Model, dict]:
    """Fit on the train split's lesions, choose the threshold on val; return (model, info)."""
    config = GateConfig(image_size, components, max_images=max_images, seed=seed)
    split = read_split(Path(split_csv))
    strata = {(r.domain, r.label) for r in split["train"]}
    train = split["train"]
    if max_images < len(train):  # whole groups, about equal per (domain, class)
        train = take_per_class(train, max(1, max_images // len(strata)), seed)[:max_images]
    pixels, train = _decode(train, image_size)
    backbone = build_efficientnet_lite0(image_size, pretrained=True, include_top=False)
    features = predict_keras(backbone, pixels).astype(np.float64)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    whitening, mean = _whitening(features, components, config.shrinkage)
    model = build_gate(backbone, whitening, mean)

    val_pixels, val = _decode(split["val"], image_size)
    distances = predict_keras(model, val_pixels)[:, 0]
    domains = np.array([r.domain for r in val])
    threshold = choose_threshold(distances, domains, config.val_false_rejection)
    info = {
        "threshold": threshold,
        "image_size": image_size,
        "components": components,
        "output": DISTANCE,
        "config": asdict(config),
        "features": "EfficientNet-Lite0 ImageNet pooled features (1280-d), L2-normalised",
        "fitted_on": {
            "split_csv": str(split_csv),
            "train_images": len(train),
            "by_domain": {d: sum(r.domain == d for r in train) for d in sorted(set(domains))},
        },
        "threshold_rule": (
            f"largest per-domain {100 * (1 - config.val_false_rejection):g}th percentile "
            "of val lesion distances"
        ),
        "val_images": {d: int(np.sum(domains == d)) for d in sorted(set(domains))},
        "val_false_rejection": false_rejections(distances, domains, threshold),
    }
    return model, info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = GateConfig()
    parser = argparse.ArgumentParser(
        prog="python -m train.lesion_gate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run", type=Path, help="a run folder with split.csv")
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--components", type=int, default=defaults.components)
    parser.add_argument("--max-images", type=int, default=defaults.max_images)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    if not (args.run / SPLIT_CSV).is_file():
        parser.error(f"{args.run / SPLIT_CSV} not found (is {args.run} a run folder?)")
    try:
        GateConfig(args.image_size, args.components, max_images=args.max_images)
    except ValueError as error:
        parser.error(str(error))
    if args.max_images < 1:
        parser.error("--max-images must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model, info = fit_lesion_gate(
        args.run / SPLIT_CSV, args.image_size, args.components, args.max_images, args.seed
    )
    model.save(args.run / GATE_KERAS)
    (args.run / GATE_JSON).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
