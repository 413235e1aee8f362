"""Colour constancy (issue 32, lever 3b) through the stages: a model whose card names the step
gets it in training, export, evaluation and the demo server, at the same point (after the
resize to the model's input), so a photo gives the same input bytes and outputs everywhere.
The page's twin is pinned in tests/demo_server/test_ondevice_contract.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contract.colour_constancy import SHADES_OF_GREY_P6, shades_of_grey
from contract.images import resize_to_input
from contract.records import Record
from contract.run_folder import SPLIT_CSV, write_split
from demo_server.images import decode_upload
from demo_server.model import Classifier, ModelError

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "sample_images").glob("*.jpg"))[:6]
FIXTURES = REPO / "tests" / "fixtures"


def test_the_server_feeds_the_pixels_its_card_asks_for(with_colour_step):
    image = decode_upload(SAMPLES[0].read_bytes(), max_pixels=10**7).image
    plain = Classifier.from_file(FIXTURES / "tiny_uint8.tflite", interpreters=1)
    corrected = Classifier.from_file(with_colour_step(SHADES_OF_GREY_P6), interpreters=1)
    resized = resize_to_input(image, plain.metadata.input_height, plain.metadata.input_width)
    assert plain.metadata.colour_constancy is None
    assert plain.to_pixels(image).tobytes() == resized.tobytes()
    assert corrected.metadata.colour_constancy == SHADES_OF_GREY_P6
    assert corrected.to_pixels(image).tobytes() == shades_of_grey(resized).tobytes()
    assert corrected.to_pixels(image).tobytes() != resized.tobytes()


def test_a_file_asking_for_an_unknown_step_is_refused_when_read(with_colour_step):
    with pytest.raises(ModelError, match="colour_constancy"):
        Classifier.from_file(with_colour_step("grey_world"), interpreters=1)


@pytest.mark.parametrize("name", ["tiny_uint8.tflite", "tiny_int8.tflite", "tiny_float32.tflite"])
def test_evaluation_and_the_server_give_the_same_outputs(name, with_colour_step, tmp_path: Path):
    """train.evaluate's predictions and the server's, for a file whose card names the step:
    equal where the file computes in integers (it sees the same input bytes)."""
    from train.evaluation.split_evaluation import card_of, split_predictions

    model = with_colour_step(SHADES_OF_GREY_P6, name)
    records = [Record(path, "nv", path.stem, "phone", "samples") for path in SAMPLES]
    write_split(tmp_path / SPLIT_CSV, {"train": [], "val": [], "test": records})
    evaluated = split_predictions(tmp_path, model, "test", card_of(tmp_path, model)).raw

    server = Classifier.from_file(model, interpreters=1)
    served = np.stack(
        [
            server.predict(server.to_pixels(decode_upload(p.read_bytes(), 10**7).image))
            for p in SAMPLES
        ]
    )
    if name == "tiny_float32.tflite":  # float kernels on a batch of six round otherwise than
        # on one image (measured: 8e-6 apart); the input bytes are the same
        np.testing.assert_allclose(served, evaluated, rtol=0, atol=1e-4)
    else:
        assert served.tobytes() == evaluated.tobytes()
    plain = Classifier.from_file(FIXTURES / name, interpreters=1)
    image = decode_upload(SAMPLES[0].read_bytes(), 10**7).image
    assert not np.array_equal(plain.predict(plain.to_pixels(image)), served[0])


@pytest.mark.slow
def test_a_run_with_the_step_writes_it_into_its_card_and_files(data_dir: Path, tmp_path: Path):
    """The smoke: a tiny network trained a few steps with --colour-constancy; its card, its
    exported files (verified against Keras on the same corrected pixels) and the server that
    reads them all name the step."""
    from export.__main__ import main as export_main
    from train.__main__ import main as train_main

    run = tmp_path / "run"
    data = f"{data_dir / 'ham10000'},{data_dir / 'pad_ufes20'}"
    argv = f"--data {data} --out {run} --backbone tiny_cnn --epochs 1 --head-epochs 0"
    argv += " --image-size 64 --batch-size 16 --max-images-per-class 6"
    assert train_main([*argv.split(), "--colour-constancy", SHADES_OF_GREY_P6]) == 0
    card = json.loads((run / "model_card.json").read_text())
    assert card["input"]["colour_constancy"] == SHADES_OF_GREY_P6
    assert card["hparams"]["colour_constancy"] == SHADES_OF_GREY_P6

    out = run / "export"
    export = f"{run} --out {out} --representative-images 12 --float-ops 2"
    export += " --variants float32,int8_mixed"
    assert export_main([*export.split(), "--max-loss-points", "100"]) == 0
    verification = json.loads((out / "verification.json").read_text())
    assert verification["passed"] and verification["splits"]
    for results in verification["splits"].values():  # Keras and the file on the same pixels
        float32 = next(r for r in results if r["variant"] == "float32")
        assert float32["top1_agreement"] >= 0.9
    for variant in ("float32", "int8_mixed"):
        path = out / f"skin_lesion_{variant}.tflite"
        assert Classifier.from_file(path, interpreters=1).metadata.colour_constancy == (
            SHADES_OF_GREY_P6
        )
        assert b"then correct its colour cast" in path.read_bytes()  # the input's description
