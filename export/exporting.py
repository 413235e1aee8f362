"""Exporting a run: convert each variant, pack the metadata, verify it against Keras, gate it.

From Python, in the spirit of Model Maker's `export_model(quantization_config)`:

    from export.exporting import ExportSettings, export_model
    failures = export_model(Path("runs/NAME"), Path("runs/NAME/export"), ExportSettings())

Verification runs each file with the LiteRT interpreter exactly as the demo server does
(`contract.interpreter.predict_tflite`, i.e. `contract.tensors.invoke`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from contract.card import ExportSection, ModelCard, read_model_card, write_model_card
from contract.colour_constancy import apply, step_of
from contract.interpreter import predict_tflite
from contract.records import Skipped, decode_records, label_indices
from contract.run_folder import MODEL_KERAS, SPLIT_CSV, read_split
from export.bias_correction import bias_corrected
from export.convert import DEFAULT_VARIANTS, QuantizationConfig, convert
from export.flips import averaged_over_views
from export.metadata import ModelInfo, write_metadata
from export.report import write_report
from export.representative import representative_records
from export.verify import Verification, keras_outputs, verify

MODEL_FILE_STEM = "skin_lesion"
VERIFY_SPLITS = ("val", "test")


@dataclass(frozen=True)
class ExportSettings:
    """Which variants to write and how strict the accuracy gate is."""

    variants: tuple[str, ...] = tuple(DEFAULT_VARIANTS)
    representative_images: int = 1000
    # A variant fails when, in some domain, it loses more balanced accuracy than this and the
    # loss is beyond noise (its 95% interval above zero; export.verify).
    max_loss_points: float = 1.0
    float_ops: int = QuantizationConfig.float_ops
    float_ops_split: str = QuantizationConfig.float_ops_split
    seed: int = 0
    # int8 variants: round the weights and correct the biases first (export.bias_correction)
    bias_correction: bool = False
    # at least this many representative images, evenly spaced (every 1000 // 256 = 3rd: 334)
    bias_correction_images: int = 256
    # Files are FILE_STEM_VARIANT.tflite; the single network for small phones ships as
    # skin_lesion_small_int8.tflite beside the ensemble (export.ship's companion folders).
    file_stem: str = MODEL_FILE_STEM
    # > 1: the file averages each image's outputs over this many flips and rotations in its
    # graph (export.flips), at about that many times the inference
    flips: int = 1


def export_section(config: QuantizationConfig, bias_correction: bool, flips: int) -> ExportSection:
    """The card's `export` entry: how the file was quantized, and its views if more than one."""
    integer = config.full_integer
    mixed = config.variant == "int8_mixed"
    return ExportSection(
        variant=config.variant,
        calibration_images=len(config.representative) if integer else None,
        bias_correction=bias_correction if integer else None,
        float_ops=config.float_ops if mixed else None,
        float_ops_split=config.float_ops_split if mixed else None,
        flips=flips if flips > 1 else None,
    )


def model_info(card: ModelCard) -> ModelInfo:
    """The file's metadata for a card that already holds its `export` entry."""
    return ModelInfo(
        model_card=card,
        description="Skin-lesion screening aid (not a diagnosis): seven-class classifier of "
        "dermoscopic and smartphone photos. " + card.disclaimer,
        author="skinlesion-ondevice contributors",
    )


def export_model(run: Path, out: Path, settings: ExportSettings) -> list[str]:
    """Write every variant, the card and verification.json into `out`; the gate's failures."""
    import keras

    card = read_model_card(run)
    size = card.input.height
    splits = read_split(run / SPLIT_CSV)
    model = keras.models.load_model(run / MODEL_KERAS)
    viewed = averaged_over_views(model, settings.flips)  # the graph every variant converts
    skipped = Skipped()
    representative = representative_records(
        splits["train"], settings.representative_images, settings.seed
    )
    # Quantization, verification and the file's figures all see the pixels the card's clients
    # feed: after its colour-constancy step (contract.colour_constancy).
    step = step_of(card)
    calibration = apply(decode_records(representative, size, skipped)[0], step)
    evaluation = {}
    for split in VERIFY_SPLITS:
        pixels, records = decode_records(splits[split], size, skipped)
        pixels = apply(pixels, step)
        if records:
            evaluation[split] = (
                pixels,
                label_indices(records),
                np.array([r.domain for r in records]),
                np.array([r.group for r in records]),
                keras_outputs(viewed, pixels),
            )
    skipped.warn()

    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[Verification]] = {split: [] for split in evaluation}
    failures = []
    corrected = None
    for variant in settings.variants:
        config = QuantizationConfig(
            variant,
            calibration if variant.startswith("int8") else None,
            settings.float_ops,
            settings.float_ops_split,
        )
        corrects = config.full_integer and settings.bias_correction
        if corrects and corrected is None:  # once, for every int8 variant
            step = max(1, len(calibration) // settings.bias_correction_images)
            corrected = averaged_over_views(
                bias_corrected(model, calibration[::step]), settings.flips
            )
        network = corrected if corrects else viewed
        section = export_section(config, settings.bias_correction, settings.flips)
        flatbuffer = write_metadata(
            convert(network, config), model_info(replace(card, export=section))
        )
        path = out / f"{settings.file_stem}_{variant}.tflite"
        path.write_bytes(flatbuffer)
        print(f"wrote {path} ({len(flatbuffer) / 1024:.0f} KB)")
        for split, (pixels, y, domains, groups, keras_probs) in evaluation.items():
            file_probs = predict_tflite(path, pixels)
            result = verify(variant, len(flatbuffer), file_probs, keras_probs, y, domains, groups)
            results[split].append(result)
            bacc = ", ".join(f"{d} {v:.4f}" for d, v in result.balanced_accuracy.items())
            print(
                f"  {split}: top-1 agreement with Keras {result.top1_agreement:.4f}; "
                f"balanced accuracy {bacc}"
            )
            failures += result.gate_failures(split, settings.max_loss_points)
    write_model_card(out, card)
    json_path, md_path = write_report(out, run, results, settings.max_loss_points, failures)
    print(f"wrote {json_path} and {md_path}")
    return failures
