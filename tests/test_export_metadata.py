"""export.metadata: populated models load unchanged in MediaPipe and LiteRT, files round-trip."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace

import numpy as np
import pytest

from contract.card import Calibration, InputContract, ModelCard, Triage
from contract.model_file import read_associated_files
from contract.taxonomy import DISPLAY_NAMES, LABELS, MALIGNANT
from export import metadata

SIZE = 32
CARD = ModelCard(
    name="tiny skin-lesion classifier",
    version="0.0.1-test",
    labels=LABELS,
    display_names=tuple(DISPLAY_NAMES[code] for code in LABELS),
    malignant_labels=tuple(sorted(MALIGNANT)),
    input=InputContract(height=SIZE, width=SIZE),
    calibration=Calibration(temperature=1.25),
    triage=Triage(malignant_threshold=0.3),
    metrics={"val": {"overall": {"balanced_accuracy": 0.5}}, "note": "naïve ✓"},
    intended_use="Testing the metadata writer.",
    limitations=(),
    data_sources=(),
    license="Apache-2.0",
    disclaimer="Not a diagnosis.",
)

pytestmark = pytest.mark.slow


def _tiny_keras_model():
    import keras

    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 127.5, offset=-1.0),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(LABELS), activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def info() -> metadata.ModelInfo:
    return metadata.ModelInfo(
        model_card=CARD,
        description="A tiny untrained network used to test the metadata writer.",
        author="tests",
    )


@pytest.fixture(scope="module")
def models(info, tiny_converter) -> dict[str, tuple[bytes, bytes]]:
    """Plain and populated bytes of the float32 model and the uint8- and int8-in/out variants."""
    import keras

    keras.utils.set_random_seed(0)
    keras_model = _tiny_keras_model()
    plain = {kind: tiny_converter(keras_model, kind, SIZE) for kind in ("float32", "uint8", "int8")}
    return {kind: (raw, metadata.write_metadata(raw, info)) for kind, raw in plain.items()}


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _litert_probabilities(model: bytes, image: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    pixels = image[None].astype(np.int16) - (128 if inp["dtype"] == np.int8 else 0)
    interpreter.set_tensor(inp["index"], pixels.astype(inp["dtype"]))
    interpreter.invoke()
    values = interpreter.get_tensor(out["index"])[0].astype(np.float32)
    scale, zero_point = out["quantization"]
    return (values - zero_point) * scale if scale else values


@pytest.mark.parametrize("kind", ["float32", "uint8"])
def test_mediapipe_image_classifier_reads_labels_and_display_names(models, image, kind):
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions
    from mediapipe.tasks.python.vision import ImageClassifier, ImageClassifierOptions

    raw, populated = models[kind]
    options = ImageClassifierOptions(
        base_options=BaseOptions(model_asset_buffer=populated),
        max_results=len(LABELS),
        display_names_locale="en",
    )
    with ImageClassifier.create_from_options(options) as classifier:
        result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
    categories = result.classifications[0].categories
    assert {c.category_name for c in categories} == set(LABELS)
    assert {c.category_name: c.display_name for c in categories} == DISPLAY_NAMES
    # Identity normalisation in the metadata makes MediaPipe feed raw pixels, as LiteRT is fed.
    expected = _litert_probabilities(raw, image)
    got = np.array([{c.index: c.score for c in categories}[i] for i in range(len(LABELS))])
    assert np.allclose(got, expected, atol=1e-5 if kind == "float32" else 1.5 / 255)


def test_mediapipe_cannot_run_the_int8_input_variant(models):
    """A known client limit, pinned so we notice if it changes: phones get the uint8 file."""
    from mediapipe.tasks.python import BaseOptions
    from mediapipe.tasks.python.vision import ImageClassifier, ImageClassifierOptions

    options = ImageClassifierOptions(base_options=BaseOptions(model_asset_buffer=models["int8"][1]))
    with pytest.raises(ValueError, match="uint8/float32"):
        ImageClassifier.create_from_options(options)


@pytest.mark.parametrize("kind", ["float32", "uint8", "int8"])
def test_litert_output_unchanged_by_metadata(models, image, kind):
    raw, populated = models[kind]
    np.testing.assert_array_equal(
        _litert_probabilities(populated, image), _litert_probabilities(raw, image)
    )


@pytest.mark.parametrize("kind", ["float32", "uint8", "int8"])
def test_associated_files_round_trip(models, info, kind):
    files = read_associated_files(models[kind][1])
    assert set(files) == {"labels.txt", "labels_en.txt", "model_card.json"}
    assert files["labels.txt"].decode().splitlines() == list(LABELS)
    assert files["labels_en.txt"].decode().splitlines() == [DISPLAY_NAMES[c] for c in LABELS]
    assert ModelCard.from_json(json.loads(files["model_card.json"])) == info.model_card
    assert "naïve ✓" in files["model_card.json"].decode()  # UTF-8, not escaped


def _read_metadata(model: bytes):
    from ai_edge_litert import schema_py_generated as tfl
    from mediapipe.tasks.metadata import metadata_schema_py_generated as md

    tflite = tfl.ModelT.InitFromObj(tfl.Model.GetRootAs(model, 0))
    (entry,) = [m for m in tflite.metadata if m.name == b"TFLITE_METADATA"]
    buffer = bytes(tflite.buffers[entry.buffer].data)
    assert md.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)
    return md.ModelMetadataT.InitFromObj(md.ModelMetadata.GetRootAs(buffer, 0)), tflite


def test_metadata_fields(models, info):
    meta, _ = _read_metadata(models["uint8"][1])
    assert meta.name.decode() == info.name and meta.version.decode() == info.version
    assert meta.minParserVersion.decode() == metadata.MIN_PARSER_VERSION
    (subgraph,) = meta.subgraphMetadata
    (image,), (probability,) = subgraph.inputTensorMetadata, subgraph.outputTensorMetadata
    assert image.name == b"image" and probability.name == b"probability"
    assert image.content.contentProperties.colorSpace == 1  # RGB
    assert list(image.processUnits[0].options.mean) == [0.0]
    assert list(image.processUnits[0].options.std) == [1.0]
    assert (list(image.stats.min), list(image.stats.max)) == ([0.0], [255.0])
    assert (list(probability.stats.min), list(probability.stats.max)) == ([0.0], [1.0])
    assert [(f.name, f.type, f.locale) for f in probability.associatedFiles] == [
        (b"labels.txt", 2, None),
        (b"labels_en.txt", 2, b"en"),
    ]
    assert [(f.name, f.type) for f in meta.associatedFiles] == [(b"model_card.json", 1)]


def test_input_description_states_the_encoding(models):
    for kind, encoding in [("float32", "raw RGB pixels 0-255"), ("int8", "pixels minus 128")]:
        meta, _ = _read_metadata(models[kind][1])
        assert encoding in meta.subgraphMetadata[0].inputTensorMetadata[0].description.decode()


def test_rewriting_replaces_metadata_and_files(models, info):
    populated = models["float32"][1]
    again = metadata.write_metadata(
        populated, replace(info, model_card=replace(CARD, version="0.0.2"))
    )
    meta, tflite = _read_metadata(again)
    assert meta.version == b"0.0.2"
    assert [m.name for m in tflite.metadata].count(b"TFLITE_METADATA") == 1
    assert len(tflite.buffers) == len(_read_metadata(populated)[1].buffers)
    with zipfile.ZipFile(io.BytesIO(again)) as archive:  # the old zip is dropped, not appended to
        assert sorted(archive.namelist()) == ["labels.txt", "labels_en.txt", "model_card.json"]


def test_model_without_metadata_has_no_associated_files(models):
    assert read_associated_files(models["float32"][0]) == {}


@pytest.mark.parametrize("junk", [b"", b"not a model", b"\x00" * 64, b"PK\x03\x04" + b"\x00" * 60])
def test_not_a_tflite_model_is_rejected(info, junk):
    with pytest.raises(ValueError, match="not a TFLite model"):
        metadata.write_metadata(junk, info)
    with pytest.raises(ValueError, match="not a TFLite model"):
        read_associated_files(junk)


def test_truncated_model_is_rejected(models, info):
    raw = models["float32"][0]
    with pytest.raises(ValueError, match="TFLite model"):
        metadata.write_metadata(raw[: len(raw) // 3], info)


def test_label_count_must_match_output_size(models, info):
    names = info.display_names[:6]
    card = replace(CARD, labels=LABELS[:6], display_names=names)
    fewer = replace(info, model_card=card)
    with pytest.raises(ValueError, match="does not match 6 labels"):
        metadata.write_metadata(models["float32"][0], fewer)


def test_input_size_must_match_model(models, info):
    with pytest.raises(ValueError, match="input tensor shape"):
        metadata.write_metadata(
            models["uint8"][0],
            replace(info, model_card=replace(CARD, input=replace(CARD.input, height=224))),
        )


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"display_names": ("a",) * 6}, "one display name per label"),
        ({"labels": ("a",) * 7}, "unique"),
        ({"display_names": ("a\nb",) * 7}, "non-empty lines"),
        ({"input": replace(CARD.input, width=0)}, "input size"),
    ],
)
def test_model_info_is_validated(info, changes, message):
    with pytest.raises(ValueError, match=message):
        replace(info, model_card=replace(CARD, **changes))


def test_the_packed_card_must_be_json_the_page_can_parse(models, info):
    card = replace(CARD, metrics={"val": {"phone": {"referrals": float("nan")}}})
    with pytest.raises(ValueError, match="JSON"):  # NaN: JSON.parse cannot read it
        metadata.write_metadata(models["float32"][0], replace(info, model_card=card))
