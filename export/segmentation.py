"""Export the lesion segmenter to an int8 .tflite with MediaPipe ImageSegmenter metadata.

    python -m export.segmentation runs/segmentation --out runs/segmentation/export

The network is what `python -m train.segment train` left in the run folder (model.keras, with
its settings and decoded photos: `contract.segmenter_run`); here it is only converted, checked
and packed. Full-integer int8 (uint8 input: raw RGB pixels; uint8 output: P(lesion) per pixel in
steps of 1/255... as the converter quantizes it), ranges set by the training photos. The
file carries:

- the standard TFLite metadata of an image segmenter, written as `export.metadata` writes the
  classifier's (the flatbuffer classes, not mediapipe's broken writer): RGB image input with
  identity normalisation (the model normalises inside), a GRAYSCALE `segmentation_masks` output
  with its labels file, and the `SEGMENTER_METADATA` custom metadata (activation NONE: the
  network already ends in a sigmoid) that MediaPipe's ImageSegmenter reads;
- `lesion_segmenter.json` (a model-level associated file): input size and the framing rule
  (`contract.framing.FramingRule`), read back by `contract.segmentation`.

The report (`lesion_segmenter_report.json` / `.md`) compares the .tflite with the Keras model on
val (Dice of the two masks against each other and against the truth) and times it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import flatbuffers
import numpy as np
from mediapipe.tasks.metadata import image_segmenter_metadata_schema_py_generated as _seg
from mediapipe.tasks.metadata import metadata_schema_py_generated as _md
from PIL import Image

from contract.framing import FramingRule
from contract.images import resize_to_input
from contract.interpreter import predict_tflite
from contract.metrics import dice_jaccard
from contract.model_file import read_associated_files
from contract.run_folder import MODEL_KERAS, RunFolderError, check_run_folder
from contract.segmentation import SEGMENTER_FILE, SEGMENTER_LABELS_FILE, read_segmenter_info
from contract.segmenter_run import (
    CONFIG_JSON,
    TRAIN_CACHE_SIZE,
    cache_name,
    read_cache,
    read_config,
)
from export.metadata import (  # the classifier's writer's building blocks
    _associated_file,
    _repack_with_metadata,
    _stats,
    _unpack_model,
    append_files,
    model_metadata_flatbuffer,
)
from export.ship import export_folder
from export.verify import keras_outputs

SEGMENTER_TFLITE = "lesion_segmenter.tflite"
REPORT_STEM = "lesion_segmenter_report"
REPRESENTATIVE_IMAGES = 200
# Custom metadata (SEGMENTER_METADATA) is a schema 1.5.0 field: MediaPipe's parser reads it.
MIN_PARSER_VERSION = "1.5.0"
_SEGMENTER_OPTIONS_IDENTIFIER = b"V001"
ACTIVATION_NONE = 0  # ImageSegmenterOptions.activation: the output already is a probability


def segmenter_metadata(
    tflite_model: bytes,
    info: dict,
    name: str = "lesion-segmenter",
    version: str = "1",
    author: str = "skinlesion-ondevice",
    license_text: str = "Apache-2.0 (code); weights trained on PAD-UFES-20 (CC BY 4.0)",
) -> bytes:
    """`tflite_model` with image-segmenter metadata and `lesion_segmenter.json` packed in."""
    model = _unpack_model(tflite_model)
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ValueError("expected one input and one output tensor")
    size = int(info["image_size"])
    image = [int(d) for d in graph.tensors[graph.inputs[0]].shape]
    mask = [int(d) for d in graph.tensors[graph.outputs[0]].shape]
    if image != [1, size, size, 3] or mask != [1, size, size, 1]:
        raise ValueError(f"expected 1x{size}x{size}x3 -> 1x{size}x{size}x1, got {image} {mask}")

    input_md = _md.TensorMetadataT()
    input_md.name = "image"
    input_md.description = (
        f"1x{size}x{size}x3 raw RGB pixels 0-255; stretch the whole photo to this size with "
        "bilinear resampling (EXIF orientation applied), no other preprocessing."
    )
    image_size = _md.ImageSizeT()
    image_size.height = image_size.width = size
    properties = _md.ImagePropertiesT()
    properties.colorSpace = _md.ColorSpaceType.RGB
    properties.defaultSize = image_size
    input_md.content = _md.ContentT()
    input_md.content.contentPropertiesType = _md.ContentProperties.ImageProperties
    input_md.content.contentProperties = properties
    normalization = _md.NormalizationOptionsT()
    normalization.mean, normalization.std = [0.0], [1.0]
    unit = _md.ProcessUnitT()
    unit.optionsType = _md.ProcessUnitOptions.NormalizationOptions
    unit.options = normalization
    input_md.processUnits = [unit]
    input_md.stats = _stats(0.0, 255.0)

    output_md = _md.TensorMetadataT()
    output_md.name = "segmentation_masks"
    output_md.description = (
        f"1x{size}x{size}x1: P(lesion) per pixel; the lesion is P >= "
        f"{info['rule']['threshold']} (see lesion_segmenter.json for the framing rule)."
    )
    grey = _md.ImagePropertiesT()
    grey.colorSpace = _md.ColorSpaceType.GRAYSCALE
    output_md.content = _md.ContentT()
    output_md.content.contentPropertiesType = _md.ContentProperties.ImageProperties
    output_md.content.contentProperties = grey
    output_md.content.range = _md.ValueRangeT()
    output_md.content.range.min, output_md.content.range.max = 1, 2
    output_md.stats = _stats(0.0, 1.0)
    output_md.associatedFiles = [
        _associated_file(
            SEGMENTER_LABELS_FILE,
            "The category of the output channel.",
            _md.AssociatedFileType.TENSOR_AXIS_LABELS,
        )
    ]

    options = _seg.ImageSegmenterOptionsT()
    options.activation = ACTIVATION_NONE
    builder = flatbuffers.Builder(0)
    builder.Finish(options.Pack(builder), _SEGMENTER_OPTIONS_IDENTIFIER)
    custom = _md.CustomMetadataT()
    custom.name = "SEGMENTER_METADATA"
    custom.data = list(bytes(builder.Output()))

    subgraph = _md.SubGraphMetadataT()
    subgraph.name = "image_segmenter"
    subgraph.inputTensorMetadata = [input_md]
    subgraph.outputTensorMetadata = [output_md]
    subgraph.customMetadata = [custom]

    metadata = model_metadata_flatbuffer(
        subgraph,
        name=name,
        description="Finds the skin lesion in a phone photo: P(lesion) per pixel. A screening "
        "aid's helper, not a diagnosis.",
        version=version,
        author=author,
        license=license_text,
        described_file=(SEGMENTER_FILE, "Input size, framing rule and measurements (JSON)."),
        min_parser_version=MIN_PARSER_VERSION,
    )
    files = {
        SEGMENTER_LABELS_FILE: b"lesion\n",
        SEGMENTER_FILE: (json.dumps(info, indent=2) + "\n").encode("utf-8"),
    }
    packed = append_files(_repack_with_metadata(model, metadata), files)
    read_segmenter_info(packed)  # what every client reads must read back
    return packed


def segmenter_info(
    image_size: int,
    rule: FramingRule | None = None,
    crop_before_classifying: bool = False,
    measured: dict | None = None,
) -> dict:
    return {
        "image_size": image_size,
        "input": "the whole photo stretched to image_size x image_size (bilinear), raw RGB",
        "output": "P(lesion) per pixel, 1 x image_size x image_size x 1",
        "rule": asdict(rule or FramingRule()),
        "crop_before_classifying": crop_before_classifying,
        "measured": measured or {},
    }


def _dice(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return dice_jaccard(a, b)[0]


def export_inputs(run: Path) -> tuple[str, ...]:
    """The files of a segmenter run that `export_segmenter` reads (`contract.segmenter_run`)."""
    size = int(read_config(run)["image_size"])
    return MODEL_KERAS, cache_name("train", TRAIN_CACHE_SIZE), cache_name("val", size)


def export_segmenter(
    run: Path, out: Path, crop_before_classifying: bool = False, threads: int = 2
) -> Path:
    """Convert the run's model.keras to int8 (ranges set by its cached train photos); compare it
    with Keras on the cached val photos; write the file."""
    import keras

    from export.convert import QuantizationConfig, convert

    config = read_config(run)
    size = int(config["image_size"])
    train = read_cache(run / cache_name("train", TRAIN_CACHE_SIZE))
    val = read_cache(run / cache_name("val", size))
    rng = np.random.default_rng(int(config["seed"]))
    chosen = rng.choice(len(train.pixels), min(REPRESENTATIVE_IMAGES, len(train.pixels)), False)
    reps = np.stack([resize_to_input(Image.fromarray(train.pixels[i]), size, size) for i in chosen])
    # Inference only: the training loss the file was compiled with is not needed.
    keras_model = keras.saving.load_model(run / MODEL_KERAS, compile=False)
    flatbuffer = convert(keras_model, QuantizationConfig("int8", reps))

    truth = val.masks
    keras_masks = keras_outputs(keras_model, val.pixels, batch_size=16).reshape(truth.shape) >= 0.5
    tflite_masks = predict_tflite(flatbuffer, val.pixels, threads).reshape(truth.shape) >= 0.5
    start = time.perf_counter()
    predict_tflite(flatbuffer, np.repeat(val.pixels[:1], 30, axis=0), threads)
    ms = 1000 * (time.perf_counter() - start) / 30
    measured = {
        "variant": "int8 (uint8 input and output)",
        "calibration_images": len(reps),
        "val_photos": len(val.pixels),
        "val_dice_keras_mean": float(_dice(truth, keras_masks).mean()),
        "val_dice_tflite_mean": float(_dice(truth, tflite_masks).mean()),
        "val_dice_tflite_vs_keras_mean": float(_dice(keras_masks, tflite_masks).mean()),
        "val_dice_tflite_vs_keras_min": float(_dice(keras_masks, tflite_masks).min()),
        f"ms_per_image_litert_{threads}_threads": ms,
    }
    info = segmenter_info(size, FramingRule(), crop_before_classifying, measured)
    out.mkdir(parents=True, exist_ok=True)
    return _write_segmenter(out, segmenter_metadata(flatbuffer, info), info)


def _write_segmenter(out: Path, packed: bytes, info: dict) -> Path:
    """The packed file and its report (the packed JSON plus the file's size), side by side."""
    path = out / SEGMENTER_TFLITE
    path.write_bytes(packed)
    report = {**info, "file_bytes": len(packed)}
    (out / f"{REPORT_STEM}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{REPORT_STEM}.md").write_text(_markdown(report))
    return path


def add_measurements(out: Path, evaluation: Path | None, framing: Path | None) -> Path:
    """Repack `out/lesion_segmenter.tflite` (same network, new metadata) with the test-split
    evaluation (`train.segment evaluate`) and the framing measurement (`train.segment framing`)
    in its JSON, and rewrite the report. The crop flag follows the framing decision."""
    path = out / SEGMENTER_TFLITE
    data = path.read_bytes()
    info = json.loads(read_associated_files(data)[SEGMENTER_FILE])
    if evaluation is not None:
        report = json.loads((evaluation / "report.json").read_text())
        info["measured"][f"{report['split']}_split"] = {
            k: report[k] for k in ("photos", "patients", "dice", "jaccard", "dice_below_0_5")
        }
    if framing is not None:
        result = json.loads((framing / "framing.json").read_text())
        info["framing_measured"] = {
            "split": result["split"],
            "decision": result["decision"],
            "scopes": {
                scope: {m: row[m] for m in ("balanced_accuracy", "malignant_sensitivity")}
                | {"n": row["n"]}
                for scope, row in result["scopes"].items()
            },
        }
        info["crop_before_classifying"] = bool(result["ship_crop"])
    return _write_segmenter(out, segmenter_metadata(data, info), info)


def _markdown(report: dict) -> str:
    m = report["measured"]
    rule = report["rule"]
    ms_key = next(k for k in m if k.startswith("ms_per_image"))
    lines = [
        "# Lesion segmenter",
        "",
        f"- Model: `{SEGMENTER_TFLITE}`, {m['variant']}, {report['file_bytes'] / 1e6:.2f} MB, "
        f"input {report['image_size']} px; output P(lesion) per pixel",
        f"- Calibration: {m['calibration_images']} training photos",
        f"- Val ({m['val_photos']} phone photos with a mask), mean Dice against the truth: "
        f"Keras {m['val_dice_keras_mean']:.4f}, .tflite {m['val_dice_tflite_mean']:.4f}",
        f"- .tflite mask against the Keras mask: mean Dice "
        f"{m['val_dice_tflite_vs_keras_mean']:.4f}, lowest "
        f"{m['val_dice_tflite_vs_keras_min']:.4f}",
    ]
    test = m.get("test_split")
    if test:

        def cell(stat: dict) -> str:
            return f"{stat['value']:.3f} ({stat['interval'][0]:.3f}-{stat['interval'][1]:.3f})"

        lines.append(
            f"- Test ({test['photos']} phone photos, {test['patients']} patients), per image, "
            f"95 % intervals over patients: Dice mean {cell(test['dice']['mean'])}, median "
            f"{cell(test['dice']['median'])}, 5th percentile {cell(test['dice']['p5'])}; "
            f"Jaccard mean {cell(test['jaccard']['mean'])}"
        )
    lines += [
        f"- LiteRT at export time: {m[ms_key]:.2f} ms per image ({ms_key.split('_')[-2]} "
        "threads; a shared, busy machine: see docs/segmentation.md for the benchmark)",
        f"- Framing rule: threshold {rule['threshold']}, a lesion covers at least "
        f"{100 * rule['min_area_fraction']:.1f} % of the photo, 'several' when the second "
        f"is at least {rule['several_ratio']} x the largest; crop margin {rule['margin']} x "
        f"the lesion's longer side on each side",
        f"- Crop applied before classifying: {report['crop_before_classifying']}",
    ]
    framing = report.get("framing_measured")
    if framing:
        lines.append(f"- Framing measured on {framing['split']}: {framing['decision']}")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m export.segmentation", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run", type=Path, help="a segmenter run (python -m train.segment train)")
    parser.add_argument("--out", type=Path, help="default: RUN/export; not models/")
    parser.add_argument(
        "--crop-before-classifying",
        action="store_true",
        help="mark the framing crop as applied before classifying (only if it measured better)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--add-measurements",
        action="store_true",
        help="do not convert: repack OUT's file with --evaluation and --framing in its JSON",
    )
    parser.add_argument("--evaluation", type=Path, help="a train.segment evaluate --out folder")
    parser.add_argument("--framing", type=Path, help="a train.segment framing --out folder")
    args = parser.parse_args(argv)
    try:
        args.out = export_folder(args.run, args.out)
    except ValueError as error:
        parser.error(str(error))
    if not args.add_measurements:
        try:
            writer = "python -m train.segment train"
            check_run_folder(args.run, (CONFIG_JSON,), written_by=writer)
            check_run_folder(args.run, export_inputs(args.run), written_by=writer)
        except RunFolderError as error:
            parser.error(str(error))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.add_measurements:
        path = add_measurements(args.out, args.evaluation, args.framing)
    else:
        path = export_segmenter(args.run, args.out, args.crop_before_classifying, args.threads)
    print((args.out / f"{REPORT_STEM}.md").read_text())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
