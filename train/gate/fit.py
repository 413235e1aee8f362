"""Fit the "not a skin lesion" gate: Mahalanobis detectors on several layers of ImageNet features.

No negative training data exists, so the gate models lesion photos only, on pretrained
EfficientNet-Lite0 features taken at several depths (Lee et al. 2018, "A simple unified framework
for detecting out-of-distribution samples"): by default the pooled outputs of blocks 3, 4 and 5
(40, 80 and 112 channels). For each, PCA whitening with shrinkage towards the mean eigenvalue is
fitted on the run's train split, giving a squared distance from the lesion mean; each distance is
divided by its own val threshold and the gate outputs the largest of these ratios, compared with
one threshold chosen on the val split (`contract.lesion_gate.choose_threshold`). The whole
computation is one Keras model, so the phone runs a single .tflite and compares one number; it
holds the backbone only up to the deepest layer used.

Measured on our data: the head alone misses textures, microscopy and terrain-like pictures (it
let 3 of the 21 development images of the time through, see
`export.non_skin_images.development_images`, which now holds 19); the middle layers see colour
and texture statistics and catch them. Blocks 3-5 alone leave the val lesion photos and the
development set as far apart as blocks 3-6 with the head did (the nearest development picture
is block 4's in both), at a fifth of the backbone's weights: block 6, block 7 and the head are
four fifths of EfficientNet-Lite0's bytes, which a phone's first visit has to download. The head
(`HEAD` in `GateConfig.layers`) is still supported: for it, few principal components (32-128)
do not work, because non-skin images differ from lesions mostly in the minor directions, and
L2 normalisation is needed because blank frames give weak features that sit near the lesion mean.

`python -m train.lesion_gate` writes lesion_gate.keras and lesion_gate.json into a run folder;
which photos the gate judges and how its threshold is chosen are `contract.lesion_gate`'s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from contract.lesion_gate import (
    THRESHOLD_MARGIN,
    THRESHOLD_RULE,
    choose_threshold,
    false_rejections,
    layer_scale,
    lesion_photos,
)
from contract.run_folder import read_split
from train.data.subset import take_per_class
from train.model.efficientnet_lite import VARIANTS, build_efficientnet_lite

DISTANCE = "largest ratio of a layer's squared Mahalanobis distance to that layer's val threshold"
BACKBONE = "lite0"
HEAD = "head"  # the pooled 1280-d head, L2-normalised
LAYERS = ("block3b_add", "block4c_add", "block5c_add")


def feature_layers() -> tuple[str, ...]:
    """The layers a gate can use: each residual block's output (pooled), and the head."""
    blocks = VARIANTS[BACKBONE].block_names
    return (*(f"{b}_add" for b in blocks if not b.endswith("a")), HEAD)


@dataclass(frozen=True)
class GateConfig:
    """How the gate is fitted; the defaults are what the shipped gate uses."""

    image_size: int = 128
    layers: tuple[str, ...] = LAYERS  # `feature_layers()`, shallow to deep
    components: int = 768  # of the head's 1280, if used; the other layers keep all channels
    shrinkage: float = 0.3  # weight of the mean eigenvalue blended into the head's covariance
    middle_shrinkage: float = 0.01  # the same for the other layers
    max_images: int = 10_000  # more than the train split: fit on all of it
    seed: int = 0
    # Each layer's distances are divided by their largest per-domain (1 - this) val quantile.
    val_false_rejection: float = 0.01
    threshold_margin: float = THRESHOLD_MARGIN  # `contract.lesion_gate.choose_threshold`

    def __post_init__(self) -> None:
        if self.image_size < 32 or not 1 <= self.components <= 1280:
            raise ValueError(f"bad image size {self.image_size} or components {self.components}")
        unknown = set(self.layers) - set(feature_layers())
        if not self.layers or unknown or len(set(self.layers)) < len(self.layers):
            raise ValueError(
                f"layers must be distinct names among {', '.join(feature_layers())}; "
                f"got {', '.join(self.layers) or 'none'}"
            )
        for shrinkage in (self.shrinkage, self.middle_shrinkage):
            if not 0 <= shrinkage < 1:
                raise ValueError(f"shrinkage must be in [0, 1), got {shrinkage}")
        if not 0 < self.val_false_rejection < 0.5:
            raise ValueError("val_false_rejection must be in (0, 0.5)")
        if self.threshold_margin < 1:
            raise ValueError("threshold_margin must be at least 1")


@dataclass(frozen=True)
class Detector:
    """One layer's Mahalanobis detector: distance = |(features - mean) W|^2 / scale."""

    layer: str
    whitening: np.ndarray
    mean: np.ndarray
    scale: float = 1.0  # the layer's own val threshold, so that detectors compare as ratios

    def distances(self, features: np.ndarray) -> np.ndarray:
        return np.sum(((features - self.mean) @ self.whitening) ** 2, axis=1) / self.scale


def fit_detector(layer: str, features: np.ndarray, components: int, shrinkage: float) -> Detector:
    """Whiten on the top principal axes of the train features, scaled to unit variance."""
    mean = features.mean(axis=0)
    cov = np.cov(features - mean, rowvar=False)
    cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / len(cov) * np.eye(len(cov))
    eigenvalues, eigenvectors = np.linalg.eigh(cov)  # ascending
    top = np.argsort(eigenvalues)[::-1][:components]
    return Detector(layer, eigenvectors[:, top] / np.sqrt(eigenvalues[top]), mean)


def feature_model(image_size: int, layers: tuple[str, ...]) -> keras.Model:
    """Pretrained EfficientNet-Lite0 -> the pooled `layers` (the head L2-normalised).

    The model ends at the deepest of them: what lies beyond is not in the graph, nor its file.
    """
    backbone = build_efficientnet_lite(BACKBONE, image_size)
    outputs = [
        keras.layers.UnitNormalization(name="unit_norm")(backbone.output)
        if name == HEAD
        else keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(
            backbone.get_layer(name).output
        )
        for name in layers
    ]
    return keras.Model(backbone.input, outputs, name="gate_features")


def build_gate(features: keras.Model, detectors: list[Detector]) -> keras.Model:
    """Features -> per layer (x - mean) W -> sum of squares / scale -> the largest, (batch, 1)."""
    ratios = []
    for tensor, detector in zip(features.outputs, detectors, strict=True):
        whiten = keras.layers.Dense(detector.whitening.shape[1], name=f"{detector.layer}_whiten")
        z = whiten(tensor)
        squares = keras.layers.Multiply(name=f"{detector.layer}_squares")([z, z])
        total = keras.layers.Dense(1, use_bias=False, name=f"{detector.layer}_distance")
        ratios.append(total(squares))
        whitening = detector.whitening.astype(np.float32)
        whiten.set_weights([whitening, (-detector.mean @ detector.whitening).astype(np.float32)])
        total.set_weights([np.full((whitening.shape[1], 1), 1 / detector.scale, np.float32)])
    distance = keras.layers.Maximum(name="distance")(ratios) if len(ratios) > 1 else ratios[0]
    return keras.Model(features.input, distance, name="lesion_gate")


def _predict_all(model: keras.Model, pixels: np.ndarray) -> list[np.ndarray]:
    outputs = model.predict(pixels, batch_size=64, verbose=0)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]  # one layer: an array
    return [np.asarray(x, np.float64) for x in outputs]


def fit_lesion_gate(split_csv: Path, config: GateConfig | None = None) -> tuple[keras.Model, dict]:
    """Fit on the train split's lesions, scale and threshold on val; return (model, info)."""
    config = config or GateConfig()
    split = read_split(Path(split_csv))
    strata = {(r.domain, r.label) for r in split["train"]}
    train = split["train"]
    if config.max_images < len(train):  # whole groups, about equal per (domain, class)
        per_stratum = max(1, config.max_images // len(strata))
        train = take_per_class(train, per_stratum, config.seed)[: config.max_images]
    pixels, train = lesion_photos(train, config.image_size)
    features = feature_model(config.image_size, config.layers)
    unscaled = [
        fit_detector(layer, x, config.components, config.shrinkage)
        if layer == HEAD
        else fit_detector(layer, x, x.shape[1], config.middle_shrinkage)
        for layer, x in zip(config.layers, _predict_all(features, pixels), strict=True)
    ]

    val_pixels, val = lesion_photos(split["val"], config.image_size)
    domains = np.array([r.domain for r in val])
    rule = config.val_false_rejection
    raw = [
        d.distances(x) for d, x in zip(unscaled, _predict_all(features, val_pixels), strict=True)
    ]
    scales = [layer_scale(r, domains, rule) for r in raw]
    detectors = [
        Detector(d.layer, d.whitening, d.mean, scale)
        for d, scale in zip(unscaled, scales, strict=True)
    ]
    model = build_gate(features, detectors)
    # What the model outputs (tests check the graph against Detector.distances), without
    # running the backbone over val a second time.
    distances = np.max([r / scale for r, scale in zip(raw, scales, strict=True)], axis=0)
    # The development-set cap of the rule is applied by the export, which holds those images.
    threshold = choose_threshold(distances, margin=config.threshold_margin)
    info = {
        "threshold": threshold,
        "image_size": config.image_size,
        "components": sum(d.whitening.shape[1] for d in detectors),  # over all layers
        "output": DISTANCE,
        "config": asdict(config),
        "features": "EfficientNet-Lite0 ImageNet features, pooled: "
        + ", ".join(
            "the head (1280-d, L2-normalised)" if layer == HEAD else layer
            for layer in config.layers
        ),
        "layer_thresholds": {d.layer: d.scale for d in detectors},
        "fitted_on": {
            "split_csv": str(split_csv),
            "train_images": len(train),
            "by_domain": {d: sum(r.domain == d for r in train) for d in sorted(set(domains))},
        },
        "threshold_rule": THRESHOLD_RULE.format(margin=config.threshold_margin),
        "val_images": {d: int(np.sum(domains == d)) for d in sorted(set(domains))},
        "cutouts": "left out of fitting and of every false-rejection figure "
        "(see contract.lesion_gate.is_cutout)",
        "val_false_rejection": false_rejections(distances, domains, threshold),
    }
    return model, info
