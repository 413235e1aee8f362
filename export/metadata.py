"""Standard TFLite model metadata (ImageClassifier schema) and our model card, packed in a model.

Why this module exists: every client (the demo server, which never imports TensorFlow; MediaPipe /
TFLite Task `ImageClassifier` on phones) reads labels, display names, input size and the model card
from the `.tflite` file itself, so the file must carry the standard metadata.

Why not the official writer: the Python `metadata_writers` / `MetadataPopulator` of mediapipe 1.2.x
fail to import (`_pywrap_metadata_version` is missing from the wheel), and mediapipe 0.10.21, whose
writer works, pins numpy<2 and protobuf 4, which clash with TensorFlow 2.21. The format is just two
flatbuffer schemas plus a zip, so we do what `MetadataPopulator` does with the generated classes:

1. build a `ModelMetadata` flatbuffer (file identifier "M001") with `min_parser_version` set;
2. unpack the model with the object API, store the metadata as a new `Buffer` referenced by a
   `Model.metadata` entry named "TFLITE_METADATA", repack (file identifier "TFL3");
3. append the associated files as an uncompressed zip after the flatbuffer (MediaPipe's extractor
   rejects compressed entries; `zipfile.ZipFile(io.BytesIO(model))` reads them back).

The TFLite model schema comes from `ai_edge_litert` (the runtime's own, newest schema) rather than
mediapipe's copy, so that unpack/repack cannot drop fields newer converters write.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as _tfl
from mediapipe.tasks.metadata import metadata_schema_py_generated as _md

from contract.card import ModelCard
from contract.model_file import DISPLAY_NAMES_FILE, LABELS_FILE, MODEL_CARD_FILE, check_tflite

METADATA_FIELD_NAME = "TFLITE_METADATA"
DISPLAY_NAMES_LOCALE = "en"

# The smallest metadata parser version that understands every field we write. Locale, model-level
# associated files and the DESCRIPTIONS / TENSOR_AXIS_LABELS types are all schema 1.0.0; we avoid
# the later additions (AssociatedFile.version 1.4.1, subgraph process units 1.1.0, tensor groups
# 1.2.0, custom metadata 1.5.0), mirroring mediapipe's metadata_version.cc. MediaPipe refuses files
# whose min_parser_version is above its own parser version, so lower is more compatible.
MIN_PARSER_VERSION = "1.0.0"

_TFLITE_IDENTIFIER = b"TFL3"
_METADATA_IDENTIFIER = b"M001"

# Real-world value ranges, independent of the tensor dtype: the input is raw RGB pixels (the int8
# variant's quantization maps q back to pixel = q + 128) and the output is softmax probabilities.
_PIXEL_RANGE = (0.0, 255.0)
_PROBABILITY_RANGE = (0.0, 1.0)

# MediaPipe's ImageClassifier takes only the float32 and uint8 inputs; int8 is for LiteRT callers.
_INPUT_ENCODINGS = {
    _tfl.TensorType.FLOAT32: "float32 raw RGB pixels 0-255",
    _tfl.TensorType.UINT8: "uint8 raw RGB pixels 0-255",
    _tfl.TensorType.INT8: "int8 RGB pixels minus 128",
}


@dataclass(frozen=True)
class ModelInfo:
    """What the metadata says about one exported model; all of it is read back by clients. The
    name, version, license, labels and input size are the card's own, so the metadata and the
    packed card cannot disagree; only the description and author are the metadata's."""

    model_card: ModelCard
    description: str
    author: str

    def __post_init__(self) -> None:
        labels, names = self.labels, self.display_names
        if not labels or len(labels) != len(names):
            raise ValueError(
                f"need one display name per label, got {len(labels)} labels and "
                f"{len(names)} display names"
            )
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels must be unique: {labels}")
        for text in (*labels, *names):
            if not text or "\n" in text or "\r" in text:
                raise ValueError(f"labels and display names must be non-empty lines: {text!r}")
        if self.input_height <= 0 or self.input_width <= 0:
            raise ValueError(f"bad input size {self.input_height}x{self.input_width}")

    @property
    def name(self) -> str:
        return self.model_card.name

    @property
    def version(self) -> str:
        return self.model_card.version

    @property
    def license(self) -> str:
        return self.model_card.license

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.model_card.labels)

    @property
    def display_names(self) -> tuple[str, ...]:
        return tuple(self.model_card.display_names)

    @property
    def input_height(self) -> int:
        return self.model_card.input.height

    @property
    def input_width(self) -> int:
        return self.model_card.input.width


def write_metadata(tflite_model: bytes, info: ModelInfo) -> bytes:
    """Return `tflite_model` with ImageClassifier metadata and the associated files packed in.

    Any metadata or associated files already in the model are replaced, so re-running is safe.
    Raises ValueError if the bytes are not a TFLite model or its tensors do not fit `info`.
    """
    model = _unpack_model(tflite_model)
    input_type = _check_signature(model, info)
    files = _associated_files(info)
    metadata = _metadata_flatbuffer(info, input_type)
    return append_files(_repack_with_metadata(model, metadata), files)


def _unpack_model(tflite_model: bytes) -> _tfl.ModelT:
    check_tflite(tflite_model)
    try:
        model = _tfl.ModelT.InitFromObj(_tfl.Model.GetRootAs(tflite_model, 0))
    except Exception as error:  # a truncated or corrupt flatbuffer fails anywhere inside
        raise ValueError(f"not a readable TFLite model: {error}") from error
    if not model.subgraphs:
        raise ValueError("TFLite model has no subgraph")
    return model


def _check_signature(model: _tfl.ModelT, info: ModelInfo) -> int:
    """Check the model is the contract's 1xHxWx3 image -> 1xN probabilities; return input dtype."""
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ValueError(
            f"expected one input and one output tensor, got {len(graph.inputs)} and "
            f"{len(graph.outputs)}"
        )
    image = graph.tensors[graph.inputs[0]]
    probabilities = graph.tensors[graph.outputs[0]]
    image_shape = [int(d) for d in image.shape]
    if image_shape != [1, info.input_height, info.input_width, 3]:
        raise ValueError(
            f"input tensor shape {image_shape} is not [1, {info.input_height}, "
            f"{info.input_width}, 3]"
        )
    if image.type not in _INPUT_ENCODINGS:
        raise ValueError(f"unsupported input tensor type {image.type} (float32, uint8 or int8)")
    output_shape = [int(d) for d in probabilities.shape]
    if output_shape != [1, len(info.labels)]:
        raise ValueError(
            f"output tensor shape {output_shape} does not match {len(info.labels)} labels"
        )
    return image.type


def _associated_files(info: ModelInfo) -> dict[str, bytes]:
    try:
        card = info.model_card.to_text(allow_nan=False)
    except ValueError as error:
        raise ValueError(f"model_card is not JSON-serialisable: {error}") from error
    return {
        LABELS_FILE: ("\n".join(info.labels) + "\n").encode(),
        DISPLAY_NAMES_FILE: ("\n".join(info.display_names) + "\n").encode(),
        MODEL_CARD_FILE: card.encode(),
    }


def _associated_file(
    name: str, description: str, kind: int, locale: str | None = None
) -> _md.AssociatedFileT:
    file = _md.AssociatedFileT()
    file.name, file.description, file.type, file.locale = name, description, kind, locale
    return file


def _stats(low: float, high: float) -> _md.StatsT:
    stats = _md.StatsT()
    stats.min, stats.max = [low], [high]
    return stats


def _input_metadata(info: ModelInfo, input_type: int) -> _md.TensorMetadataT:
    size = _md.ImageSizeT()
    size.height, size.width = info.input_height, info.input_width
    properties = _md.ImagePropertiesT()
    properties.colorSpace = _md.ColorSpaceType.RGB
    properties.defaultSize = size
    content = _md.ContentT()
    content.contentPropertiesType = _md.ContentProperties.ImageProperties
    content.contentProperties = properties
    # Normalisation is inside the model; identity options tell clients to feed raw pixels.
    normalization = _md.NormalizationOptionsT()
    normalization.mean, normalization.std = [0.0], [1.0]
    unit = _md.ProcessUnitT()
    unit.optionsType = _md.ProcessUnitOptions.NormalizationOptions
    unit.options = normalization

    tensor = _md.TensorMetadataT()
    tensor.name = "image"
    step = info.model_card.input.colour_constancy
    then = (
        f", then correct its colour cast ({step}: contract/colour_constancy.py, model_card.json "
        "input.colour_constancy)"
        if step
        else ", no other preprocessing"
    )
    tensor.description = (
        f"1x{info.input_height}x{info.input_width}x3 {_INPUT_ENCODINGS[input_type]}; stretch the "
        f"whole image to this size with bilinear resampling{then}."
    )
    tensor.content = content
    tensor.processUnits = [unit]
    tensor.stats = _stats(*_PIXEL_RANGE)
    return tensor


def _output_metadata(info: ModelInfo) -> _md.TensorMetadataT:
    content = _md.ContentT()
    content.contentPropertiesType = _md.ContentProperties.FeatureProperties
    content.contentProperties = _md.FeaturePropertiesT()
    tensor = _md.TensorMetadataT()
    tensor.name = "probability"
    tensor.description = f"Softmax probabilities of the {len(info.labels)} diagnosis categories."
    tensor.content = content
    tensor.stats = _stats(*_PROBABILITY_RANGE)
    # Clients take the first TENSOR_AXIS_LABELS file as category names, so the codes come first.
    labels = _md.AssociatedFileType.TENSOR_AXIS_LABELS
    tensor.associatedFiles = [
        _associated_file(LABELS_FILE, "Category codes, one per output.", labels),
        _associated_file(
            DISPLAY_NAMES_FILE, "Display names, one per output.", labels, DISPLAY_NAMES_LOCALE
        ),
    ]
    return tensor


def _metadata_flatbuffer(info: ModelInfo, input_type: int) -> bytes:
    subgraph = _md.SubGraphMetadataT()
    subgraph.name = "image_classifier"
    subgraph.inputTensorMetadata = [_input_metadata(info, input_type)]
    subgraph.outputTensorMetadata = [_output_metadata(info)]

    return model_metadata_flatbuffer(
        subgraph,
        name=info.name,
        description=info.description,
        version=info.version,
        author=info.author,
        license=info.license,
        described_file=(
            MODEL_CARD_FILE,
            "Model card (JSON): labels, input size, calibration, threshold, metrics.",
        ),
        min_parser_version=MIN_PARSER_VERSION,
    )


def model_metadata_flatbuffer(
    subgraph: _md.SubGraphMetadataT,
    *,
    name: str,
    description: str,
    version: str,
    author: str,
    license: str,
    described_file: tuple[str, str],
    min_parser_version: str,
) -> bytes:
    """The "M001" metadata flatbuffer of one subgraph, with one model-level JSON file (name,
    what it holds) of type DESCRIPTIONS, which clients that do not know it (MediaPipe, Task
    library) ignore."""
    metadata = _md.ModelMetadataT()
    metadata.name = name
    metadata.description = description
    metadata.version = version
    metadata.author = author
    metadata.license = license
    metadata.subgraphMetadata = [subgraph]
    metadata.associatedFiles = [
        _associated_file(*described_file, _md.AssociatedFileType.DESCRIPTIONS)
    ]
    metadata.minParserVersion = min_parser_version

    builder = flatbuffers.Builder(1024)
    builder.Finish(metadata.Pack(builder), file_identifier=_METADATA_IDENTIFIER)
    return bytes(builder.Output())


def _repack_with_metadata(model: _tfl.ModelT, metadata: bytes) -> bytes:
    """Store `metadata` under TFLITE_METADATA (replacing any old one) and repack the model."""
    model.buffers = model.buffers or []
    metadata_buffer = _tfl.BufferT()
    metadata_buffer.data = np.frombuffer(metadata, np.uint8)  # numpy packs fast, bytes per byte
    existing = [m for m in model.metadata or [] if m.name == METADATA_FIELD_NAME.encode()]
    if existing:
        model.buffers[existing[0].buffer] = metadata_buffer
    else:
        model.buffers.append(metadata_buffer)
        entry = _tfl.MetadataT()
        entry.name = METADATA_FIELD_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata = [*(model.metadata or []), entry]

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=_TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def without_files(model: bytes) -> bytes:
    """The flatbuffer alone: `model` without the zip of files appended after it (a repack
    replaces them and keeps the network's bytes as they are)."""
    check_tflite(model)
    buffer = io.BytesIO(model)
    if not zipfile.is_zipfile(buffer):
        return model
    with zipfile.ZipFile(buffer) as archive:  # offsets count from the file's first byte
        start = min((m.header_offset for m in archive.infolist()), default=archive.start_dir)
    return model[:start]


def append_files(flatbuffer: bytes, files: dict[str, bytes]) -> bytes:
    """Append `files` as an uncompressed zip: MediaPipe maps entries in place, no inflating, and
    LiteRT ignores bytes after the flatbuffer."""
    out = io.BytesIO(flatbuffer)
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, mode="a", compression=zipfile.ZIP_STORED) as archive:
        for name, content in files.items():  # a fixed date: the same export, the same bytes
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)
    return out.getvalue()
