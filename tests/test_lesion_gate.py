"""The "not a skin lesion" gate on a small real subset: fit -> export -> the server's LesionGate."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from export.non_skin_images import development_images, non_skin_images

SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"
MUST_REJECT = ("skimage.chelsea", "skimage.coffee", "white", "black", "document")


@pytest.fixture(scope="module")
def gate_run(data_dir: Path, tmp_path_factory) -> Path:
    """A run folder with a small grouped split and a gate fitted on ~300 train images."""
    from contract.lesion_gate import GATE_JSON, GATE_KERAS
    from contract.records import Skipped
    from contract.run_folder import SPLIT_CSV, write_split
    from train.data.datasets import load_dataset, merge_identical_images
    from train.data.split import SplitFractions, grouped_split
    from train.data.subset import take_per_class
    from train.gate.fit import GateConfig, fit_lesion_gate

    run = tmp_path_factory.mktemp("runs") / "gate"
    run.mkdir()
    records = []
    for name in ("ham10000", "pad_ufes20", "pad_ufes20_cutouts"):
        records += load_dataset(data_dir / name, Skipped())
    records = take_per_class(merge_identical_images(records), 40, seed=0)
    write_split(run / SPLIT_CSV, grouped_split(records, SplitFractions(), seed=0))
    model, info = fit_lesion_gate(run / SPLIT_CSV, GateConfig(image_size=128, max_images=300))
    model.save(run / GATE_KERAS)
    (run / GATE_JSON).write_text(json.dumps(info))
    return run


@pytest.fixture(scope="module")
def gate_file(gate_run: Path) -> Path:
    from export.lesion_gate import export_lesion_gate

    return export_lesion_gate(gate_run, gate_run / "models")


@pytest.fixture(scope="module")
def gate(gate_file: Path):
    from demo_server.lesion_gate import LesionGate

    return LesionGate.from_file(gate_file)


@pytest.mark.data
@pytest.mark.slow
def test_sample_lesion_photos_are_accepted(gate):
    for path in sorted(SAMPLES.glob("*.jpg")):
        with Image.open(path) as image:
            result = gate.check(image.convert("RGB"))
        assert result.is_lesion, f"{path.name}: {result}"


@pytest.mark.data
def test_cutouts_are_told_apart_from_photos(data_dir: Path):
    """The gate is fitted on camera photos only; PAD-UFES-20's cut-outs are recognised."""
    import numpy as np

    from contract.images import model_input
    from contract.lesion_gate import is_cutout

    photos = sorted(SAMPLES.glob("*.jpg"))
    cutouts = sorted((data_dir / "pad_ufes20_cutouts" / "images").glob("*.jpg"))[:20]
    assert len(photos) >= 10 and len(cutouts) == 20
    pixels = np.stack([model_input(path, 128) for path in photos + cutouts])
    assert is_cutout(pixels).tolist() == [False] * len(photos) + [True] * len(cutouts)


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name", MUST_REJECT)
def test_non_skin_images_are_rejected(gate, name: str):
    result = gate.check(non_skin_images()[name])
    assert not result.is_lesion, f"{name}: {result}"
    assert result.distance > result.threshold


@pytest.mark.data
@pytest.mark.slow
def test_json_round_trip(gate_file: Path, gate):
    from train.gate.fit import DISTANCE, LAYERS

    data = gate_file.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.getinfo("lesion_gate.json").compress_type == zipfile.ZIP_STORED
        info = json.loads(archive.read("lesion_gate.json"))
    assert info["output"] == DISTANCE
    assert {"threshold", "image_size", "components", "measured"} <= set(info)
    assert gate.threshold == pytest.approx(info["threshold"])
    assert gate.image_size == info["image_size"] == 128
    report = json.loads((gate_file.parent / "lesion_gate_report.json").read_text())
    assert len(report["measured"]["non_skin"]) == len(non_skin_images())
    assert len(report["measured"]["development"]) == len(development_images())
    fitted = json.loads((gate_file.parents[1] / "lesion_gate.json").read_text())
    assert list(fitted["layer_thresholds"]) == list(LAYERS)


@pytest.mark.data
@pytest.mark.slow
def test_litert_ignores_the_appended_zip(gate_file: Path):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from export.metadata import without_files

    data = gate_file.read_bytes()
    network = without_files(data)
    outputs = []
    for model in (data, network):
        interpreter = Interpreter(model_content=model)
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        interpreter.set_tensor(inp["index"], np.full(inp["shape"], 128, inp["dtype"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    assert len(network) < len(data) and outputs[0] == outputs[1]


@pytest.mark.data
@pytest.mark.slow
def test_exported_file_keeps_the_keras_distances_in_a_phones_budget(gate_run: Path, gate_file):
    """float16 moves the distances by a few percent at most, and the file (the backbone up to
    block 5) fits the gate's share of a 10 MB first visit (docs/on_device.md)."""
    import keras
    import numpy as np

    from contract.images import model_input
    from contract.interpreter import predict_tflite
    from contract.lesion_gate import GATE_KERAS
    from export.metadata import without_files

    pixels = np.stack([model_input(path, 128) for path in sorted(SAMPLES.glob("*.jpg"))])
    expected = keras.saving.load_model(gate_run / GATE_KERAS).predict(pixels, verbose=0)[:, 0]
    network = without_files(gate_file.read_bytes())
    got = predict_tflite(network, pixels, 2)[:, 0]
    np.testing.assert_allclose(got, expected, rtol=0.05)
    assert len(gate_file.read_bytes()) < 2.4e6


def test_missing_run_folder_is_a_usage_error(tmp_path: Path, capsys):
    from train.lesion_gate import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "no_such_run")])
    assert exit_info.value.code == 2
    assert "split.csv" in capsys.readouterr().err


def test_export_without_a_fitted_gate_is_a_usage_error(tmp_path: Path, capsys):
    from export.lesion_gate import main

    (tmp_path / "split.csv").write_text("split,path,label,group,domain,source\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--out", str(tmp_path / "models")])
    assert exit_info.value.code == 2
    assert "lesion_gate" in capsys.readouterr().err


def test_synthetic_frames_are_deterministic():
    first, second = non_skin_images(), non_skin_images()
    assert list(first) == list(second)
    assert all(im.tobytes() == second[name].tobytes() for name, im in first.items())
    assert all(im.mode == "RGB" for im in first.values())


def test_gate_model_is_the_largest_scaled_layer_distance():
    """The Keras graph computes what the numpy detectors define, for every layer."""
    import keras
    import numpy as np

    from train.gate.fit import Detector, build_gate, fit_detector

    rng = np.random.default_rng(0)
    inputs = keras.Input((6,))
    features = keras.Model(
        inputs, [keras.layers.Dense(4)(inputs), keras.layers.Dense(5, activation="relu")(inputs)]
    )
    x = rng.normal(size=(200, 6)).astype(np.float32)
    outputs = [np.asarray(o, np.float64) for o in features.predict(x, verbose=0)]
    detectors = [
        Detector(d.layer, d.whitening, d.mean, scale)
        for d, scale in zip(
            (fit_detector("a", outputs[0], 4, 0.1), fit_detector("b", outputs[1], 3, 0.0)),
            (2.0, 7.0),
            strict=True,
        )
    ]
    distances = [d.distances(o) for d, o in zip(detectors, outputs, strict=True)]
    got = build_gate(features, detectors).predict(x, verbose=0)[:, 0]
    np.testing.assert_allclose(got, np.maximum(*distances), rtol=1e-4)
    assert len(set(np.argmax(distances, axis=0))) == 2  # each layer decides for some images


def test_the_gate_holds_the_backbone_only_up_to_its_deepest_layer():
    """What lies beyond the deepest layer used (block 6, the head: four fifths of the weights)
    is left out of the graph, and so of the file a phone downloads."""
    from train.gate.fit import HEAD, LAYERS, feature_model

    shallow = feature_model(128, LAYERS)
    assert [tuple(o.shape) for o in shallow.outputs] == [(None, 40), (None, 80), (None, 112)]
    names = {layer.name for layer in shallow.layers}
    assert "block5c_add" in names
    assert not {n for n in names if n.startswith(("block6", "block7", "head"))}
    full = feature_model(128, (*LAYERS, HEAD))
    assert full.count_params() > 3 * shallow.count_params()
    assert tuple(full.outputs[-1].shape) == (None, 1280)


@pytest.mark.parametrize(
    "layers", [(), ("block3b_add", "block3b_add"), ("block3a_add",), ("block9z_add", "head")]
)
def test_unknown_or_repeated_layers_are_refused(layers: tuple[str, ...], tmp_path: Path, capsys):
    from train.gate.fit import GateConfig
    from train.lesion_gate import main

    with pytest.raises(ValueError, match="layers must be distinct names"):
        GateConfig(layers=layers)
    (tmp_path / "split.csv").write_text("split,path,label,group,domain,source\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--layers", ",".join(layers)])
    assert exit_info.value.code == 2
    assert "layers must be distinct names" in capsys.readouterr().err


def test_development_and_evaluation_sets_do_not_overlap():
    """Gate designs are compared on one set and measured on the other: no shared picture."""
    import numpy as np

    def thumbnails(images: dict) -> list[np.ndarray]:
        return [np.asarray(im.resize((16, 16)), np.float64) for im in images.values()]

    development, evaluation = development_images(), non_skin_images()
    assert not set(development) & set(evaluation)
    assert all(im.mode == "RGB" and min(im.size) >= 16 for im in development.values())
    for a in thumbnails(development):
        assert min(np.abs(a - b).mean() for b in thumbnails(evaluation)) > 2.0
