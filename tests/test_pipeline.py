"""The whole pipeline on a small real subset: train (tiny CNN, one epoch) -> export (int8 and
float32, with metadata) -> MediaPipe and LiteRT clients -> evaluation -> demo server."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from contract.taxonomy import LABELS
from export.convert import VARIANTS

pytestmark = pytest.mark.slow  # every test here trains, converts or evaluates a model

SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"


@pytest.fixture(scope="module")
def tiny_run(data_dir: Path, tmp_path_factory) -> Path:
    from train.__main__ import main

    run = tmp_path_factory.mktemp("runs") / "tiny"
    argv = [
        "--data",
        f"{data_dir / 'ham10000'},{data_dir / 'pad_ufes20'}",
        "--out",
        str(run),
        "--backbone",
        "tiny_cnn",
        "--epochs",
        "1",
        "--image-size",
        "64",
        "--batch-size",
        "16",
        "--max-images-per-class",
        "12",
    ]
    assert main(argv) == 0
    return run


@pytest.fixture(scope="module")
def exported(tiny_run: Path) -> Path:
    from export.__main__ import main

    out = tiny_run / "models"
    # An untrained one-epoch model may lose accuracy to int8; the gate itself is tested below.
    variants = ",".join(VARIANTS)
    argv = f"{tiny_run} --out {out} --representative-images 24 --float-ops 2 --variants {variants}"
    assert main([*argv.split(), "--max-loss-points", "100"]) == 0
    return out


def test_run_folder_has_model_split_and_card(tiny_run: Path):
    for name in ("model.keras", "model_card.json", "split.csv", "checkpoints/last.weights.h5"):
        assert (tiny_run / name).is_file(), name
    card = json.loads((tiny_run / "model_card.json").read_text())
    assert card["labels"] == list(LABELS)
    assert card["input"]["height"] == card["input"]["width"] == 64
    assert "inside the model" in card["preprocessing"]
    val = card["metrics"]["val"]
    assert set(val) == {"overall", "dermoscopic", "phone"}
    for report in val.values():
        assert 0 <= report["balanced_accuracy"] <= 1
        assert {"per_class_recall", "auc_ovr", "malignant", "confusion_matrix"} <= set(report)
    assert set(card["counts"]) == {"train", "val", "test"}
    assert card["counts"]["train"]["phone"]["mel"] > 0
    assert card["calibration"]["temperature"] > 0
    assert 0 <= card["triage"]["malignant_threshold"] <= 1


def test_resume_continues_from_the_last_checkpoint(tiny_run: Path, tmp_path: Path):
    import shutil

    from train.__main__ import main

    run = tmp_path / "resumed"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("models", "eval-*"))
    hparams = json.loads((run / "hparams.json").read_text())
    # saved by an earlier version: a retired option at the value that means what this one does
    (run / "hparams.json").write_text(json.dumps({**hparams, "epochs": 2, "distill_model": ""}))
    assert main(["--out", str(run), "--resume"]) == 0
    state = json.loads((run / "checkpoints/state.json").read_text())
    assert state["epoch"] == 2
    assert json.loads((run / "model_card.json").read_text())["training"]["epochs"] == 2


def test_resume_adds_a_third_stage_to_a_finished_pretrained_run(
    tiny_run: Path, tmp_path: Path, capsys
):
    from train.__main__ import main

    run = tmp_path / "staged"
    argv = (
        f"--split-from {tiny_run / 'split.csv'} --out {run} --backbone efficientnet_lite0 "
        "--image-size 64 --epochs 2 --head-epochs 1 --finetune-blocks 2 --batch-size 16"
    )
    assert main(argv.split()) == 0
    assert main(["--out", str(run), "--resume", "--more-epochs", "1", "--more-blocks", "4"]) == 0
    assert "stage: epochs 3-3, trainable top blocks 4" in capsys.readouterr().out
    assert json.loads((run / "checkpoints/state.json").read_text())["epoch"] == 3
    for saved in (
        json.loads((run / "hparams.json").read_text()),
        json.loads((run / "model_card.json").read_text())["hparams"],
    ):
        assert (saved["epochs"], saved["more_epochs"], saved["more_blocks"]) == (2, 1, 4)


def test_a_run_starts_from_another_runs_network_at_another_size(tiny_run: Path, tmp_path: Path):
    """--init-from loads the finished run's weights (a learning rate of 0 keeps them: a fresh
    start would differ) into a network built at the new size (issue 32, lever 3d)."""
    import keras
    import numpy as np

    from train.__main__ import main

    run = tmp_path / "larger"
    argv = (
        f"--split-from {tiny_run / 'split.csv'} --out {run} --backbone tiny_cnn --image-size 96 "
        f"--epochs 1 --batch-size 16 --learning-rate 0 --init-from {tiny_run}"
    )
    assert main(argv.split()) == 0
    before = keras.saving.load_model(tiny_run / "model.keras", compile=False)
    after = keras.saving.load_model(run / "model.keras", compile=False)
    assert after.input_shape == (None, 96, 96, 3)
    assert len(after.trainable_weights) == len(before.trainable_weights) > 0
    for a, b in zip(after.trainable_weights, before.trainable_weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    card = json.loads((run / "model_card.json").read_text())
    assert card["hparams"]["init_from"] == str(tiny_run)


def test_init_from_refuses_a_network_of_another_split(tiny_run: Path, tmp_path: Path, capsys):
    """A start that trained on this run's val or test images would leak them (as a teacher)."""
    from contract.run_folder import read_split, write_split
    from train.__main__ import main

    splits = read_split(tiny_run / "split.csv")
    splits["train"], splits["val"] = splits["train"] + splits["val"][:1], splits["val"][1:]
    write_split(tmp_path / "other.csv", splits)
    argv = (
        f"--split-from {tmp_path / 'other.csv'} --out {tmp_path / 'x'} --backbone tiny_cnn "
        f"--image-size 64 --init-from {tiny_run}"
    )
    assert main(argv.split()) == 2
    assert "was trained on another split (train differs)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        ("--backbone efficientnet_lite0", "trained with --backbone 'tiny_cnn'"),
        ("--backbone tiny_cnn --colour-constancy shades_of_grey_p6", "--colour-constancy ''"),
    ],
)
def test_init_from_refuses_a_network_of_another_recipe(
    extra: str, message: str, tiny_run: Path, tmp_path: Path, capsys
):
    from train.__main__ import main

    argv = f"--split-from {tiny_run / 'split.csv'} --out {tmp_path / 'x'} --init-from {tiny_run}"
    with pytest.raises(SystemExit) as exit_info:
        main([*argv.split(), *extra.split()])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_ema_weights_are_the_ones_validated_and_saved(tiny_run: Path, tmp_path: Path):
    """From the same head-stage checkpoint, one more epoch with a near-1 EMA momentum saves a head
    that stayed near its first step (Keras starts the average there); without EMA it moves on."""
    import shutil

    import h5py

    from train.__main__ import main

    head_only = tmp_path / "head_only"
    argv = (
        f"--split-from {tiny_run / 'split.csv'} --out {head_only} --backbone efficientnet_lite0 "
        "--image-size 64 --epochs 1 --head-epochs 1 --batch-size 4 --ema-momentum 0.9999"
    )
    assert main(argv.split()) == 0

    def head_kernel(run: Path) -> np.ndarray:
        with h5py.File(run / "checkpoints/last.weights.h5") as weights:
            return np.array(weights["layers/dense/vars/0"])

    start = head_kernel(head_only)
    moved = {}
    for name, momentum in (("ema", 0.9999), ("raw", 0.0)):
        run = tmp_path / name
        shutil.copytree(head_only, run)
        hparams = json.loads((run / "hparams.json").read_text())
        (run / "hparams.json").write_text(json.dumps({**hparams, "ema_momentum": momentum}))
        assert (
            main(["--out", str(run), "--resume", "--more-epochs", "1", "--more-blocks", "2"]) == 0
        )
        moved[name] = np.abs(head_kernel(run) - start).max()
    assert moved["raw"] > 0
    assert moved["ema"] < 0.5 * moved["raw"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--epochs", "3"], "it cannot change --epochs (only --more-epochs"),
        (["--seed", "2", "--balance", "logit_adjust"], "it cannot change --balance, --seed"),
        (["--data", "d"], "drop --data and --split-from"),
        (["--more-epochs", "2"], "tiny_cnn trains in one stage; a third stage needs a pretrained"),
    ],
)
def test_resume_refuses_to_change_the_recipe(extra, message, tmp_path: Path, capsys):
    from train.__main__ import main
    from train.model.hparams import HParams

    (tmp_path / "hparams.json").write_text(json.dumps(HParams(backbone="tiny_cnn").to_dict()))
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), "--resume", *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "saved", [{"distill_model": "models/teacher.tflite"}, {"no_such_option": 1}]
)
def test_resume_refuses_a_run_saved_with_an_option_this_version_lacks(saved, tmp_path, capsys):
    from train.__main__ import main
    from train.model.hparams import HParams

    hparams = {**HParams(backbone="tiny_cnn").to_dict(), **saved}
    (tmp_path / "hparams.json").write_text(json.dumps(hparams))
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), "--resume"])
    assert exit_info.value.code == 2
    assert f"sets {next(iter(saved))}, which this version lacks" in capsys.readouterr().err


@pytest.fixture(scope="module")
def same_split_run(tiny_run: Path, tmp_path_factory) -> Path:
    """A second tiny run on the first one's split, with another seed."""
    from train.__main__ import main

    run = tmp_path_factory.mktemp("runs") / "same_split"
    argv = f"--split-from {tiny_run / 'split.csv'} --out {run} --backbone tiny_cnn --epochs 1 "
    argv += "--image-size 64 --seed 7"
    assert main(argv.split()) == 0
    return run


def test_split_only_writes_the_split_a_full_run_would_use(
    tiny_run: Path, data_dir: Path, tmp_path: Path
):
    """The split is a function of the data and the seed: fix it once, train recipes later."""
    from train.__main__ import main

    out = tmp_path / "split"
    data = ["--data", f"{data_dir / 'ham10000'},{data_dir / 'pad_ufes20'}"]
    assert main([*data, "--out", str(out), "--max-images-per-class", "12", "--split-only"]) == 0
    assert (out / "split.csv").read_bytes() == (tiny_run / "split.csv").read_bytes()
    assert not (out / "model.keras").exists() and not (out / "checkpoints").exists()


def test_split_from_reuses_another_runs_split(tiny_run: Path, same_split_run: Path):
    from contract.run_folder import read_split

    assert read_split(same_split_run / "split.csv") == read_split(tiny_run / "split.csv")
    assert (same_split_run / "model.keras").is_file()


@pytest.fixture(scope="module")
def ensemble_run(tiny_run: Path, same_split_run: Path, tmp_path_factory) -> Path:
    from train.ensemble import main

    out = tmp_path_factory.mktemp("runs") / "ensemble"
    assert main([str(tiny_run), str(same_split_run), "--out", str(out)]) == 0
    return out


def test_ensemble_averages_its_members_and_is_calibrated_on_val(
    tiny_run: Path, same_split_run: Path, ensemble_run: Path
):
    import keras

    out = ensemble_run
    ensemble = keras.models.load_model(out / "model.keras")
    members = [keras.models.load_model(r / "model.keras") for r in (tiny_run, same_split_run)]
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
    expected = np.mean([m.predict(pixels, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(ensemble.predict(pixels, verbose=0), expected, atol=1e-5)
    card = json.loads((out / "model_card.json").read_text())
    assert [m["run"] for m in card["hparams"]["members"]] == ["tiny", "same_split"]
    assert card["backbone"] == "tiny_cnn-ensemble-of-2"
    assert card["preprocessing"].startswith("inside the model: x / 255;")
    assert card["metrics"]["val"]["overall"]["n"] > 0
    assert 0.0 < card["triage"]["malignant_threshold"] < 1.0
    assert (out / "split.csv").read_bytes() == (tiny_run / "split.csv").read_bytes()


def test_an_ensemble_exports_to_one_tflite_that_matches_keras(ensemble_run: Path):
    import keras

    from contract.interpreter import predict_tflite
    from export.__main__ import main

    out = ensemble_run / "models"
    assert main([str(ensemble_run), "--out", str(out), "--variants", "float32"]) == 0
    pixels = np.random.default_rng(1).uniform(0, 255, (3, 64, 64, 3)).astype(np.float32)
    expected = keras.models.load_model(ensemble_run / "model.keras").predict(pixels, verbose=0)
    got = predict_tflite(out / "skin_lesion_float32.tflite", pixels)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_ensemble_refuses_runs_on_different_splits(tiny_run: Path, tmp_path: Path, capsys):
    import shutil

    from train.ensemble import main

    other = tmp_path / "other"
    shutil.copytree(tiny_run, other, ignore=shutil.ignore_patterns("models", "eval-*"))
    lines = (other / "split.csv").read_text().splitlines()
    (other / "split.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(SystemExit):
        main([str(tiny_run), str(other), "--out", str(tmp_path / "e")])
    assert "was trained on another split" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tiny_run), "--out", str(tmp_path / "e")])
    assert "at least two run folders" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "d", "--out", "x", "--epochs", "0"], "--epochs must be at least 1"),
        (["--data", "d", "--out", "x", "--backbone", "resnet"], "--backbone must be one of"),
        (["--data", "d", "--out", "x", "--image-size", "8"], "--image-size must be between"),
        (["--data", "d", "--out", "x", "--balance", "oversample"], "argument --balance"),
        (["--out", "nowhere", "--resume"], "not found; is nowhere a run folder"),
        (["--split-from", "nope.csv", "--out", "x"], "--split-from nope.csv: no such file"),
        (["--out", "x", "--split-from", "s.csv", "--split-only"], "--split-only makes a new"),
        (["--out", "x", "--resume", "--split-only"], "not with --resume or --split-from"),
        (["--data", "d", "--out", "x", "--more-epochs", "-1"], "--more-epochs must be at least 0"),
        (
            "--data d --out x --backbone tiny_cnn --more-epochs 1".split(),
            "needs a pretrained backbone",
        ),
        (
            "--data d --out x --backbone efficientnet_lite0 --finetune-blocks 17".split(),
            "--finetune-blocks must be between 0 and 16 for efficientnet_lite0",
        ),
        (
            "--data d --out x --backbone efficientnet_lite2 --more-blocks 22".split(),
            "--more-blocks must be between 0 and 21 for efficientnet_lite2",
        ),
        (
            "--data d --out x --ema-momentum 1".split(),
            "--ema-momentum must be at least 0 and below",
        ),
        ("--data d --out x --distill-weight 1.5".split(), "--distill-weight must be between 0"),
        ("--data d --out x --distill-temperature 0".split(), "--distill-temperature must be above"),
        ("--data d --out x --distill-from nowhere".split(), "--distill-from nowhere: no such run"),
        ("--data d --out x --init-from nowhere".split(), "--init-from nowhere: not a finished run"),
    ],
)
def test_train_cli_usage_errors(argv, message, capsys):
    from train.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m train" in err and message in err


def test_a_bare_train_command_trains_a_shipped_member(tmp_path: Path, monkeypatch):
    from contract.run_folder import SHIPPED_SPLIT_CSV
    from train.__main__ import parse_args
    from train.model.hparams import HParams

    args, hparams = parse_args(["--out", str(tmp_path / "member")])
    assert args.split_from == SHIPPED_SPLIT_CSV and not args.data
    assert hparams == HParams()
    # run from elsewhere, the shipped split is not found: a usage error, not a crash
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--out", "member"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("option", "value", "field", "recorded"),
    [
        ("--balance", "logit_adjust", "balance", "logit_adjust"),
        ("--malignant-loss-weight", "0.5", "malignant_loss_weight", 0.5),
    ],
)
def test_a_custom_loss_saves_a_model_any_reader_can_load(
    data_dir: Path, tmp_path: Path, option: str, value: str, field: str, recorded
):
    import keras

    from train.__main__ import main

    run = tmp_path / "la"
    argv = f"--data {data_dir / 'ham10000'} --data {data_dir / 'pad_ufes20'} --out {run} "
    argv += "--backbone tiny_cnn --epochs 1 --image-size 48 --max-images-per-class 8 "
    assert main([*argv.split(), option, value]) == 0
    assert json.loads((run / "hparams.json").read_text())[field] == recorded
    model = keras.models.load_model(run / "model.keras")  # no custom objects needed
    assert model.loss.name == "categorical_crossentropy"


def test_a_student_learns_from_a_teacher_on_the_same_split(tiny_run: Path, tmp_path: Path):
    from train.__main__ import main
    from train.model.distill import TEACHER_TARGETS

    run = tmp_path / "student"
    argv = f"--split-from {tiny_run / 'split.csv'} --out {run} --backbone tiny_cnn --epochs 1 "
    argv += f"--image-size 64 --distill-from {tiny_run} --distill-weight 0.7 "
    argv += "--distill-temperature 3"
    assert main(argv.split()) == 0
    hparams = json.loads((run / "model_card.json").read_text())["hparams"]
    assert (hparams["distill_from"], hparams["distill_weight"]) == (str(tiny_run), 0.7)
    probs = np.load(run / TEACHER_TARGETS)
    card = json.loads((tiny_run / "model_card.json").read_text())
    n_train = sum(sum(per_class.values()) for per_class in card["counts"]["train"].values())
    assert probs.shape == (n_train, len(LABELS))


def test_a_teacher_from_another_split_is_refused(tiny_run: Path, tmp_path: Path, capsys):
    from train.__main__ import main

    other = tmp_path / "other.csv"
    rows = (tiny_run / "split.csv").read_text().splitlines()
    moved = next(i for i, row in enumerate(rows) if row.startswith("val,"))
    rows[moved] = "train," + rows[moved].removeprefix("val,")
    other.write_text("\n".join(rows) + "\n")
    argv = f"--split-from {other} --out {tmp_path / 'student'} --backbone tiny_cnn --epochs 1 "
    argv += "--image-size 64 "
    assert main([*argv.split(), "--distill-from", str(tiny_run)]) == 2
    assert "trained on another split" in capsys.readouterr().err


def test_train_cli_rejects_an_empty_or_unknown_data_folder(tmp_path: Path, capsys):
    from train.__main__ import main

    (tmp_path / "empty").mkdir()
    assert main(["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run")]) == 2
    assert "no HAM10000_metadata.csv" in capsys.readouterr().err
    (tmp_path / "classes" / "nv").mkdir(parents=True)
    assert main(["--data", str(tmp_path / "classes"), "--out", str(tmp_path / "run2")]) == 2
    assert "the data set is empty" in capsys.readouterr().err


def test_export_writes_both_variants_with_reports(exported: Path):
    int8 = exported / "skin_lesion_int8.tflite"
    float32 = exported / "skin_lesion_float32.tflite"
    assert int8.stat().st_size < 0.5 * float32.stat().st_size
    report = json.loads((exported / "verification.json").read_text())
    assert report["passed"] is True
    assert [v["variant"] for v in report["splits"]["val"]] == list(VARIANTS)
    float_result = report["splits"]["val"][VARIANTS.index("float32")]
    assert float_result["top1_agreement"] > 0.98
    assert float_result["max_probability_difference"] < 1e-3
    assert "| int8 |" in (exported / "verification.md").read_text()


def test_exported_files_carry_labels_and_model_card(exported: Path, tiny_run: Path):
    for variant in VARIANTS:
        data = (exported / f"skin_lesion_{variant}.tflite").read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as packed:
            assert packed.read("labels.txt").decode().split() == list(LABELS)
            card = json.loads(packed.read("model_card.json"))
        assert card["export"]["variant"] == variant
        assert card["triage"] == json.loads((tiny_run / "model_card.json").read_text())["triage"]


def mediapipe_classify(model: Path, image: Path, locale: str | None = None):
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision
    from PIL import Image

    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(model)),
        max_results=len(LABELS),
        display_names_locale=locale,
    )
    pixels = np.asarray(Image.open(image).convert("RGB"))
    with vision.ImageClassifier.create_from_options(options) as classifier:
        result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels))
    return result.classifications[0].categories


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "int8_io"])
def test_mediapipe_image_classifier_returns_our_category_names(exported: Path, variant: str):
    """MediaPipe Tasks is the API phone apps use: it must load the file unchanged."""
    categories = mediapipe_classify(
        exported / f"skin_lesion_{variant}.tflite", SAMPLES / "mel_phone_PAT_233_354_828.jpg", "en"
    )
    assert sorted(c.category_name for c in categories) == sorted(LABELS)
    assert sum(c.score for c in categories) == pytest.approx(1.0, abs=0.05)
    assert {c.display_name for c in categories} >= {"Melanoma", "Basal cell carcinoma"}


def test_int8_io_variant_is_for_npus_not_mediapipe(exported: Path):
    """MediaPipe only feeds uint8 or float32 images; the int8-input file is for NPU delegates
    and LiteRT, and MediaPipe says so instead of misreading it."""
    from contract.interpreter import predict_tflite

    model = exported / "skin_lesion_int8_io.tflite"
    with pytest.raises(Exception, match="uint8/float32, got INT8"):
        mediapipe_classify(model, SAMPLES / "nv_phone_PAT_621_3592_955.jpg")
    probs = predict_tflite(model, np.full((1, 64, 64, 3), 128, np.uint8))
    assert probs.shape == (1, len(LABELS)) and probs.sum() == pytest.approx(1.0, abs=0.05)


def test_int8_mixed_keeps_the_most_damaged_ops_in_float(exported: Path):
    """Float islands (DEQUANTIZE ... QUANTIZE) inside; uint8 at the ends, or float32 where the
    operator next to the input or output is one kept in float (MediaPipe reads both)."""
    from ai_edge_litert.interpreter import Interpreter

    def ops_and_io(variant: str) -> tuple[list[str], type, type]:
        interpreter = Interpreter(model_path=str(exported / f"skin_lesion_{variant}.tflite"))
        interpreter.allocate_tensors()
        ops = [op["op_name"] for op in interpreter._get_ops_details()]
        return (
            ops,
            interpreter.get_input_details()[0]["dtype"],
            interpreter.get_output_details()[0]["dtype"],
        )

    mixed_ops, mixed_in, mixed_out = ops_and_io("int8_mixed")
    int8_ops, int8_in, int8_out = ops_and_io("int8")
    assert int8_in == int8_out == np.uint8
    assert mixed_in in (np.uint8, np.float32) and mixed_out in (np.uint8, np.float32)
    assert "DEQUANTIZE" in mixed_ops and "DEQUANTIZE" not in int8_ops
    with zipfile.ZipFile(exported / "skin_lesion_int8_mixed.tflite") as packed:
        assert json.loads(packed.read("model_card.json"))["export"]["float_ops"] == 2


def test_bias_correction_is_for_int8_only_and_recorded_in_the_file(tiny_run: Path, tmp_path: Path):
    from export.__main__ import main

    out = tmp_path / "corrected"
    argv = f"{tiny_run} --out {out} --variants int8,float32 --representative-images 24"
    assert main([*argv.split(), "--bias-correction", "--max-loss-points", "100"]) == 0
    exports = {}
    for variant in ("int8", "float32"):
        with zipfile.ZipFile(out / f"skin_lesion_{variant}.tflite") as packed:
            exports[variant] = json.loads(packed.read("model_card.json"))["export"]
    assert exports["int8"]["bias_correction"] is True
    assert "bias_correction" not in exports["float32"]
    float_result = json.loads((out / "verification.json").read_text())["splits"]["val"][1]
    assert float_result["variant"] == "float32"
    assert float_result["max_probability_difference"] < 1e-3  # the uncorrected network
    low, high = float_result["balanced_accuracy_loss_interval"]["overall"]
    assert low <= float_result["balanced_accuracy_loss_points"]["overall"] <= high


def test_flips_folded_into_the_file_are_verified_against_keras_with_the_same_views(
    tiny_run: Path, tmp_path: Path
):
    """`--flips 4`: every variant (a bias-corrected one too) averages 4 views in its graph, its
    card says so, and the gate compares it with the Keras model averaging the same views."""
    from ai_edge_litert.interpreter import Interpreter

    from export.__main__ import main

    out = tmp_path / "flipped"
    argv = f"{tiny_run} --out {out} --variants int8,float32 --representative-images 24 --flips 4"
    assert main([*argv.split(), "--bias-correction", "--max-loss-points", "100"]) == 0
    for variant in ("int8", "float32"):
        path = out / f"skin_lesion_{variant}.tflite"
        with zipfile.ZipFile(path) as packed:
            assert json.loads(packed.read("model_card.json"))["export"]["flips"] == 4
        interpreter = Interpreter(model_path=str(path))
        assert list(interpreter.get_input_details()[0]["shape"]) == [1, 64, 64, 3]
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        assert {"REVERSE_V2", "CONCATENATION"} <= ops  # 4 views: flips, no transpose
    float_result = json.loads((out / "verification.json").read_text())["splits"]["val"][1]
    assert float_result["variant"] == "float32"
    assert float_result["max_probability_difference"] < 1e-3


def test_export_gate_fails_when_a_variant_loses_too_much(
    tiny_run: Path, tmp_path: Path, capsys, monkeypatch
):
    """A file that names the wrong class for every image loses all the Keras model gets right,
    beyond noise: the gate must trip, say why, and mark the report failed."""
    import export.exporting
    from export.__main__ import main

    real_verify = export.exporting.verify

    def verify_a_broken_file(variant, size, file_probs, keras_probs, y, domains, groups):
        wrong = np.eye(len(LABELS))[(y + 1) % len(LABELS)]
        return real_verify(variant, size, wrong, keras_probs, y, domains, groups)

    monkeypatch.setattr(export.exporting, "verify", verify_a_broken_file)
    assert main([str(tiny_run), "--out", str(tmp_path), "--variants", "float32"]) == 1
    assert "accuracy gate failed" in capsys.readouterr().err
    report = json.loads((tmp_path / "verification.json").read_text())
    assert report["passed"] is False
    assert any("float32 loses" in failure for failure in report["failures"])


def test_export_cli_usage_errors(tmp_path: Path, tiny_run: Path, capsys):
    from export.__main__ import main

    with pytest.raises(SystemExit):
        main([str(tmp_path)])
    assert "is not a finished run folder" not in capsys.readouterr().err  # names the file
    with pytest.raises(SystemExit):
        main([str(tiny_run), "--variants", "int4"])
    assert "--variants must be" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tiny_run), "--float-ops", "0"])
    assert "--float-ops must be at least 1" in capsys.readouterr().err


def test_evaluate_on_the_exported_int8_model(exported: Path, tiny_run: Path):
    from train.evaluate import main

    out = tiny_run / "eval"
    assert (
        main(
            [
                str(tiny_run),
                "--model",
                str(exported / "skin_lesion_int8.tflite"),
                "--split",
                "test",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "metrics.json").read_text())
    assert set(result["metrics"]) == {"overall", "dermoscopic", "phone"}
    for scope, scores in result["metrics"].items():
        for plot in ("confusion", "roc", "reliability"):
            assert (out / f"{plot}_{scope}.png").stat().st_size > 1000
        # An untrained model's intervals may be degenerate; their maths is in test_bootstrap.py.
        assert set(scores["ci95"]) == {
            "balanced_accuracy",
            "malignant_auc",
            "malignant_sensitivity",
            "malignant_specificity",
        }
        low, high = scores["ci95"]["balanced_accuracy"]
        assert 0 <= low <= high <= 1
    report = (out / "report.md").read_text()
    overall = result["metrics"]["overall"]
    low, high = overall["ci95"]["balanced_accuracy"]
    assert (
        f"| balanced accuracy | {overall['balanced_accuracy']:.3f} ({low:.3f}–{high:.3f}) |"
        in report
    )
    assert "resamples of whole lesions / patients" in report and "| mel |" in report
    # The per-image table (train.compare's input) holds the very predictions scored above.
    from contract import metrics
    from contract.predictions import read_table

    table = read_table(out / "predictions.csv")
    assert len(table.paths) == overall["n"]
    assert metrics.balanced_accuracy(table.labels, table.probs.argmax(1)) == pytest.approx(
        overall["balanced_accuracy"]
    )


def test_evaluate_by_folder_separates_photos_from_cutouts(tiny_run: Path, tmp_path: Path):
    from train.evaluate import main

    assert main([str(tiny_run), "--split", "val", "--by-folder", "--out", str(tmp_path)]) == 0
    scopes = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert {"folder ham10000", "folder pad_ufes20"} <= set(scopes)
    assert scopes["folder ham10000"]["n"] == scopes["dermoscopic"]["n"]
    assert (tmp_path / "confusion_folder_pad_ufes20.png").is_file()


def test_evaluate_can_record_test_metrics_in_the_run_card(tiny_run: Path, tmp_path: Path):
    import shutil

    from train.evaluate import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("models", "eval*"))
    assert main([str(run), "--split", "test", "--update-card", "--out", str(tmp_path / "e")]) == 0
    card = json.loads((run / "model_card.json").read_text())
    recorded = json.loads((tmp_path / "e" / "metrics.json").read_text())["metrics"]
    assert card["metrics"]["test"] == recorded
    assert "val" in card["metrics"]


def test_measure_in_card_records_the_run_models_report(tiny_run: Path, tmp_path: Path):
    """What the build's metrics steps call on a recipe without [export]: the Keras model's
    report on the split, in the run's card (a file's: tests/test_build.py)."""
    import shutil

    from contract.card import read_model_card
    from train.evaluation.split_evaluation import evaluate, measure_in_card

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("models", "eval*"))
    measure_in_card(run, None, "test", False)
    assert read_model_card(run).metrics["test"] == evaluate(run, None, "test").report


@pytest.fixture(scope="module")
def answers_run(tiny_run: Path, tmp_path_factory) -> Path:
    """A copy of the tiny run with the answers' model fitted into its card."""
    import shutil

    from train.fit_answers import main

    run = tmp_path_factory.mktemp("answers") / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("models", "eval*"))
    assert main([str(run), "--strengths", "0.5,1.0"]) == 0
    return run


def test_fit_answers_records_a_model_per_domain_and_its_own_calibration(
    answers_run: Path, tiny_run: Path
):
    card = json.loads((answers_run / "model_card.json").read_text())
    before = json.loads((tiny_run / "model_card.json").read_text())
    answers = card["answers"]
    assert set(answers["models"]) == {"dermoscopic", "phone"}
    phone = answers["models"]["phone"]
    assert phone["questions"][:2] == ["age", "site"] and "bleed" in phone["questions"]
    assert "sex" not in phone["questions"]  # recorded only for biopsied PAD patients
    assert answers["models"]["dermoscopic"]["questions"] == ["age", "sex", "site"]
    assert np.array(phone["weights"]).shape == (len(phone["features"]), len(phone["classes"]))
    assert {m["strength"] for m in answers["models"].values()} <= {0.5, 1.0}
    assert answers["calibration"]["temperature"] > 0
    assert 0 < answers["triage"]["malignant_threshold"] < 1
    assert set(answers["metrics"]["val"]) == {"overall", "dermoscopic", "phone"}
    assert card["limitations"][-1].startswith("The optional answers")
    # The photo-only calibration is left as it was.
    assert card["calibration"] == before["calibration"] and card["triage"] == before["triage"]


def test_evaluate_with_answers_uses_and_records_the_answers_section(
    answers_run: Path, tmp_path: Path
):
    from train.evaluate import main

    out = tmp_path / "e"
    assert (
        main([str(answers_run), "--split", "test", "--answers", "--update-card", "--out", str(out)])
        == 0
    )
    result = json.loads((out / "metrics.json").read_text())
    card = json.loads((answers_run / "model_card.json").read_text())
    assert result["answers"] == [q["name"] for q in card["answers"]["questions"]]
    assert result["temperature"] == card["answers"]["calibration"]["temperature"]
    assert card["answers"]["metrics"]["test"] == result["metrics"]
    assert "test" not in card["metrics"] or card["metrics"]["test"] != result["metrics"]
    assert "photo plus each image's answers" in (out / "report.md").read_text()


def test_with_answers_every_photo_referral_stands(answers_run: Path, tmp_path: Path):
    """The answers may add a referral, never cancel one: each image the photo alone refers is
    referred with answers too (its threshold 0), so sensitivity with answers is never lower."""
    from contract import metrics
    from contract.predictions import read_table
    from train.evaluate import main

    card = json.loads((answers_run / "model_card.json").read_text())
    assert card["answers"]["triage"]["photo_referral_stands"] is True
    tables, sensitivity = {}, {}
    for name, extra in (("photo", []), ("answers", ["--answers"])):
        out = tmp_path / name
        assert main([str(answers_run), "--split", "val", *extra, "--out", str(out)]) == 0
        tables[name] = read_table(out / "predictions.csv")
        summary = json.loads((out / "metrics.json").read_text())["metrics"]
        sensitivity[name] = summary["overall"]["malignant"]["sensitivity"]
    photo, answers = tables["photo"], tables["answers"]
    margin = metrics.malignant_probability(photo.probs) - photo.thresholds
    assert (margin > 1e-5).any() and (margin < -1e-5).any()
    assert (answers.thresholds[margin > 1e-5] == 0).all()
    assert (answers.thresholds[margin < -1e-5] > 0).all()
    assert sensitivity["answers"] >= sensitivity["photo"]


def listed(items: list[str]) -> list[str]:
    """The CLI's list syntax: one comma-separated argument (none for an empty list)."""
    return [",".join(items)] if items else []


def test_evaluate_with_some_answers_skips_the_others(answers_run: Path, tmp_path: Path):
    from train.evaluate import main

    runs = {}
    for asked in ([], ["age", "site"], ["bleed"]):
        out = tmp_path / "_".join(asked or ["all"])
        argv = [str(answers_run), "--split", "val", "--answers", *listed(asked)]
        assert main([*argv, "--out", str(out)]) == 0
        runs[tuple(asked)] = json.loads((out / "metrics.json").read_text())
    assert runs[("age", "site")]["answers"] == ["age", "site"]
    assert "answers to age, site only" in (tmp_path / "age_site" / "report.md").read_text()
    # A question only the phone model asks leaves dermoscopic images with the prior alone.
    card = json.loads((answers_run / "model_card.json").read_text())
    prior_only = runs[("bleed",)]["metrics"]["dermoscopic"]
    photo = card["metrics"]["val"]["dermoscopic"]
    assert prior_only["balanced_accuracy"] == photo["balanced_accuracy"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["moles"], "unknown question(s) ['moles']"),
        (["age", "--update-card"], "every answer"),
        (["age,moles"], "unknown question(s) ['moles']"),
    ],
)
def test_evaluate_answers_usage_errors(answers_run: Path, extra, message, capsys):
    from train.evaluate import main

    with pytest.raises(SystemExit):
        main([str(answers_run), "--split", "val", "--answers", *extra])
    assert message in capsys.readouterr().err


def test_answer_sensitivity_reports_each_yes_no_question(answers_run: Path, tiny_run: Path, capsys):
    from train.answer_sensitivity import main

    assert main([str(answers_run), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "| domain | question | images | triage changed |" in out
    assert "| phone | bleed |" in out and "| dermoscopic |" not in out  # HAM has no yes/no
    with pytest.raises(SystemExit):
        main([str(tiny_run)])
    assert "no answers section" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["no/such/run"], "not found; is no/such/run a finished run folder"),
     (["RUN", "--strengths", "0.5,0"], "--strengths must be positive"),
     (["RUN", "--strengths", "0.5,x"], "expected a list such as 0.25,0.5,1")],
)  # fmt: skip
def test_fit_answers_usage_errors(tiny_run: Path, argv, message, capsys):
    from train.fit_answers import main

    with pytest.raises(SystemExit):
        main([str(tiny_run) if a == "RUN" else a for a in argv])
    assert message in capsys.readouterr().err


def test_evaluate_refuses_answers_when_the_card_has_none(tiny_run: Path, capsys):
    from train.evaluate import main

    with pytest.raises(SystemExit):
        main([str(tiny_run), "--split", "val", "--answers"])
    assert "no answers section" in capsys.readouterr().err


def file_run(source: Path, folder: Path) -> Path:
    """A run of `source` that has only its split and card, as the shipped 2025 model: its
    network survives only as a .tflite."""
    import shutil

    folder.mkdir(parents=True)
    for name in ("split.csv", "model_card.json"):
        shutil.copy(source / name, folder / name)
    return folder


def test_a_file_is_calibrated_on_val_and_carries_its_new_card(
    tiny_run: Path, exported: Path, tmp_path: Path, capsys
):
    from contract.interpreter import predict_tflite
    from contract.model_file import model_card, read_model_file
    from export.card import main as pack
    from train.calibrate import main as calibrate
    from train.evaluate import main as evaluate

    run, model = file_run(tiny_run, tmp_path / "run"), exported / "skin_lesion_int8.tflite"
    before = json.loads((run / "model_card.json").read_text())
    assert calibrate([str(run), "--model", str(model)]) == 0
    card = json.loads((run / "model_card.json").read_text())
    assert card["calibration"]["fitted_on"] == "val, outputs of skin_lesion_int8.tflite"
    by_domain = card["triage"]["by_domain"]
    assert set(by_domain) == {"dermoscopic", "phone"}
    assert card["triage"]["malignant_threshold"] == min(
        d["own_threshold"] for d in by_domain.values()
    )
    assert card["triage"]["rule"] == before["triage"]["rule"]
    assert list(card["metrics"]) == ["val"]  # test metrics were at the old thresholds

    # The old file carries the old card: its test metrics do not belong in this one.
    with pytest.raises(SystemExit):
        evaluate([str(run), "--model", str(model), "--split", "test", "--update-card"])
    assert "does not carry the run's card" in capsys.readouterr().err

    out = tmp_path / "export"
    assert pack([str(model), "--card", str(run / "model_card.json"), "--out", str(out)]) == 0
    new = out / model.name
    assert model_card(read_model_file(new)).to_json() == {
        **card,
        "export": model_card(read_model_file(model)).to_json()["export"],
    }
    pixels = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    assert np.array_equal(predict_tflite(new, pixels), predict_tflite(model, pixels))

    evaluation = tmp_path / "e"
    argv = [
        str(run),
        "--model",
        str(new),
        "--split",
        "val",
        "--update-card",
        "--out",
        str(evaluation),
    ]
    assert evaluate(argv) == 0
    measured = json.loads((evaluation / "metrics.json").read_text())["metrics"]
    for domain in ("dermoscopic", "phone"):  # the file, evaluated, is what calibration fitted
        fitted = card["metrics"]["val"][domain]
        assert measured[domain]["malignant"] == fitted["malignant"]
        assert measured[domain]["balanced_accuracy"] == fitted["balanced_accuracy"]
    assert json.loads((run / "model_card.json").read_text())["metrics"]["val"] == measured


def test_update_card_records_the_model_evaluated_in_the_card_it_carries(
    tiny_run: Path, exported: Path, tmp_path: Path, capsys
):
    """One meaning: the model evaluated (the run's Keras model or a --model file) must carry
    the run's card, and its metrics go into that card, whether the run keeps its Keras model
    or only its split and card."""
    import shutil

    from train.evaluate import main

    model = str(exported / "skin_lesion_int8.tflite")
    with_keras = tmp_path / "with_keras"
    shutil.copytree(tiny_run, with_keras, ignore=shutil.ignore_patterns("models", "eval-*"))
    for run in (with_keras, file_run(tiny_run, tmp_path / "card_only")):
        out = run / "evaluation"
        argv = [str(run), "--model", model, "--split", "test", "--update-card"]
        assert main([*argv, "--out", str(out)]) == 0
        measured = json.loads((out / "metrics.json").read_text())["metrics"]
        assert json.loads((run / "model_card.json").read_text())["metrics"]["test"] == measured
    split_only = tmp_path / "split_only"
    split_only.mkdir()
    shutil.copy(tiny_run / "split.csv", split_only / "split.csv")
    with pytest.raises(SystemExit):
        main([str(split_only), "--model", model, "--split", "test", "--update-card"])
    assert "has no model_card.json" in capsys.readouterr().err


def test_calibrating_a_file_refits_the_answers_calibration_too(
    answers_run: Path, exported: Path, tmp_path: Path
):
    from export.card import main as pack
    from train.calibrate import main as calibrate

    run = file_run(answers_run, tmp_path / "run")
    before = json.loads((run / "model_card.json").read_text())
    card_json = str(run / "model_card.json")
    assert (
        pack(
            [
                str(exported / "skin_lesion_int8.tflite"),
                "--card",
                card_json,
                "--out",
                str(tmp_path / "f"),
            ]
        )
        == 0
    )
    assert calibrate([str(run), "--model", str(tmp_path / "f" / "skin_lesion_int8.tflite")]) == 0
    answers = json.loads((run / "model_card.json").read_text())["answers"]
    assert answers["models"] == before["answers"]["models"]  # regressions and strengths stay
    assert answers["calibration"]["fitted_on"] == "val, outputs of skin_lesion_int8.tflite"
    assert set(answers["triage"]["by_domain"]) == {"dermoscopic", "phone"}
    assert list(answers["metrics"]) == ["val"]


def test_a_card_goes_only_into_its_own_models_file(
    tiny_run: Path, exported: Path, tmp_path: Path, capsys
):
    from export.card import main as pack
    from train.calibrate import main as calibrate

    model = exported / "skin_lesion_int8.tflite"
    run = file_run(tiny_run, tmp_path / "run")
    card = json.loads((run / "model_card.json").read_text())
    (run / "model_card.json").write_text(json.dumps({**card, "version": "another"}))
    assert calibrate([str(run), "--model", str(model)]) == 2
    assert "differs in ['version']" in capsys.readouterr().err
    assert (
        pack([str(model), "--card", str(run / "model_card.json"), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "differs in ['version']" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    (tmp_path / "bad.json").write_text("{not json")
    for argv, message in (
        (["--card", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o")], "not JSON"),
        (["--card", str(run / "model_card.json"), "--out", "models"], "export to a new folder"),
    ):
        with pytest.raises(SystemExit):
            pack([str(model), *argv])
        assert message in capsys.readouterr().err


def test_demo_server_serves_the_exported_model(exported: Path):
    from demo_server import create_app

    model = exported / "skin_lesion_int8.tflite"
    app = create_app({"TESTING": True, "MODEL_PATH": model, "LESION_GATE_PATH": None})
    client = app.test_client()
    with open(SAMPLES / "nv_dermoscopic_ISIC_0030871.jpg", "rb") as f:
        response = client.post("/api/v1/classify", data={"image": (f, "nv.jpg")})
    assert response.status_code == 200
    body = response.get_json()
    assert [s["code"] for s in body["scores"]] and {s["code"] for s in body["scores"]} == set(
        LABELS
    )
    assert body["top"]["code"] == body["scores"][0]["code"]
    assert (
        body["model"]["name"]
        == json.loads((exported.parent / "model_card.json").read_text())["name"]
    )
