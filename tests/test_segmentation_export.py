"""The segmenter network, its loss, its export with image-segmenter metadata, and what
MediaPipe's ImageSegmenter makes of the file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from contract.model_file import read_associated_files
from contract.segmentation import SEGMENTER_FILE, SEGMENTER_LABELS_FILE, read_segmenter_info

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY = FIXTURES / "segmenter" / "tiny_segmenter.tflite"
REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "lesion_segmenter.tflite"


def spot_photo(size: int = 128) -> np.ndarray:
    image = np.full((size, size, 3), 220, np.uint8)
    yy, xx = np.mgrid[:size, :size]
    image[(yy - size // 2) ** 2 + (xx - size // 4) ** 2 <= (size // 6) ** 2] = 30
    return image


def test_the_fixture_reads_back_and_carries_the_rule():
    data = TINY.read_bytes()
    info = read_segmenter_info(data)
    assert info.image_size == 64 and info.rule.threshold == 0.5
    assert info.crop_before_classifying is False
    files = read_associated_files(data)
    assert set(files) == {SEGMENTER_FILE, SEGMENTER_LABELS_FILE}
    assert files[SEGMENTER_LABELS_FILE] == b"lesion\n"
    crop = read_segmenter_info((TINY.parent / "tiny_segmenter_crop.tflite").read_bytes())
    assert crop.crop_before_classifying is True


def test_segmenter_metadata_rewrites_and_refuses_other_shapes():
    from export.segmentation import segmenter_info, segmenter_metadata

    data = segmenter_metadata(TINY.read_bytes(), segmenter_info(64, crop_before_classifying=True))
    assert read_segmenter_info(data).crop_before_classifying is True
    with pytest.raises(ValueError, match="expected 1x32x32x3"):
        segmenter_metadata(TINY.read_bytes(), segmenter_info(32))
    with pytest.raises(ValueError, match="expected"):
        segmenter_metadata((FIXTURES / "tiny_uint8.tflite").read_bytes(), segmenter_info(64))


@pytest.mark.parametrize("path", [TINY, SHIPPED], ids=["fixture", "shipped"])
def test_mediapipe_image_segmenter_loads_the_file(path):
    """MediaPipe reads the labels and the activation from the metadata and returns both the
    category mask (0 = lesion, 255 = no category) and the confidence mask, at the photo's size."""
    if not path.is_file():
        pytest.skip(f"{path.relative_to(REPO)} not present")
    mp = pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core import base_options

    options = vision.ImageSegmenterOptions(
        base_options=base_options.BaseOptions(model_asset_path=str(path)),
        output_confidence_masks=True,
        output_category_mask=True,
    )
    photo = spot_photo(200)
    with vision.ImageSegmenter.create_from_options(options) as segmenter:
        assert segmenter.labels == ["lesion"]
        result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=photo))
    confidence = result.confidence_masks[0].numpy_view().reshape(200, 200)
    category = result.category_mask.numpy_view().reshape(200, 200)
    assert np.mean((category == 0) == (confidence > 0.5)) > 0.98  # both resized, differently
    if path == TINY:  # the fixture's rule is known: dark is lesion
        assert category[100, 50] == 0 and category[10, 190] == 255


@pytest.mark.slow
def test_the_fixture_is_what_the_script_makes(tmp_path):
    sys.path.insert(0, str(FIXTURES))
    try:
        from make_segmenter_fixture import build
    finally:
        sys.path.remove(str(FIXTURES))
    from train.segmentation.evaluation import segment_tflite

    made = build(tmp_path)
    pixels = np.stack([spot_photo(64), np.full((64, 64, 3), 90, np.uint8)])
    for path in made:
        committed = TINY.parent / path.name
        assert read_associated_files(path.read_bytes()) == read_associated_files(
            committed.read_bytes()
        )
        assert np.array_equal(segment_tflite(path, pixels), segment_tflite(committed, pixels))


def _segmenter_run(run: Path) -> Path:
    """What `python -m train.segment train` leaves for export, for the fixture's network: its
    model.keras compiled with the training loss, config.json, and the cached train and val
    photos (dark discs on light skin, the masks the discs)."""
    import json

    from PIL import Image

    sys.path.insert(0, str(FIXTURES))
    try:
        from make_segmenter_fixture import SIZE, dark_pixel_model, representative_images
    finally:
        sys.path.remove(str(FIXTURES))
    from contract.images import resize_to_input
    from contract.segmenter_run import CONFIG_JSON, TRAIN_CACHE_SIZE, cache_name, write_cache
    from train.segmentation.loss import dice_bce_loss

    run.mkdir()
    model = dark_pixel_model()
    model.compile("adam", dice_bce_loss)
    model.save(run / "model.keras")
    (run / CONFIG_JSON).write_text(json.dumps({"image_size": SIZE, "seed": 0}))
    photos = representative_images()
    paths = [f"photo{i}.png" for i in range(len(photos))]
    big = np.stack([resize_to_input(Image.fromarray(p), *(TRAIN_CACHE_SIZE,) * 2) for p in photos])
    write_cache(run / cache_name("train", TRAIN_CACHE_SIZE), paths, big, big.mean(-1) < 128)
    write_cache(run / cache_name("val", SIZE), paths, photos, photos.mean(-1) < 128)
    return run


@pytest.mark.slow
def test_export_converts_what_training_left_in_the_run_folder(tmp_path):
    """export.segmentation reads the run folder only: the network loads without the training
    loss, calibration and the check against Keras use the cached photos."""
    from export.segmentation import SEGMENTER_TFLITE, main

    run = _segmenter_run(tmp_path / "run")
    assert main([str(run)]) == 0
    info = read_segmenter_info((run / "export" / SEGMENTER_TFLITE).read_bytes())
    measured = info.card["measured"]
    assert measured["calibration_images"] == measured["val_photos"] == 32
    assert measured["val_dice_tflite_vs_keras_mean"] > 0.95
    assert measured["val_dice_keras_mean"] > 0.95  # dark is lesion, as the masks say


def test_export_names_the_missing_run_file(tmp_path, capsys):
    import json

    from export.segmentation import main

    with pytest.raises(SystemExit):
        main([str(tmp_path)])
    assert "config.json not found" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps({"image_size": 64, "seed": 0}))
    (tmp_path / "model.keras").write_bytes(b"")
    with pytest.raises(SystemExit):
        main([str(tmp_path)])
    assert "cache_train_320.npz not found" in capsys.readouterr().err


@pytest.mark.slow
def test_network_shape_loss_and_a_few_training_steps():
    import keras

    from train.segmentation.loss import dice_bce_loss, hard_dice, soft_dice
    from train.segmentation.network import build_segmenter

    model = build_segmenter(64, pretrained=False)
    assert model.output_shape == (None, 64, 64, 1)
    assert model.count_params() < 1_000_000  # about 1 MB in int8
    encoder = model.get_layer("encoder")
    frozen = [
        layer for layer in encoder.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert frozen and not any(layer.trainable for layer in frozen)
    with pytest.raises(ValueError, match="multiple of 16"):
        build_segmenter(70, pretrained=False)

    truth = np.zeros((4, 64, 64, 1), np.float32)
    truth[:, 16:40, 20:44] = 1
    assert np.allclose(keras.ops.convert_to_numpy(soft_dice(truth, truth)), 1.0)
    assert np.allclose(keras.ops.convert_to_numpy(hard_dice(truth, truth)), 1.0)
    pixels = np.where(truth > 0, 40.0, 210.0) * np.ones((1, 1, 1, 3), np.float32)
    model.compile(keras.optimizers.Adam(3e-3), dice_bce_loss)
    first = model.train_on_batch(pixels, truth)
    for _ in range(15):
        last = model.train_on_batch(pixels, truth)
    assert last < first


def test_ship_checks_a_segmenter_in_the_export_folder(tmp_path):
    from export.ship import ShipError, check_export

    (tmp_path / "verification.json").write_text('{"passed": true}')
    (tmp_path / "skin_lesion_int8.tflite").write_bytes(
        (FIXTURES / "tiny_uint8.tflite").read_bytes()
    )
    (tmp_path / "lesion_segmenter.tflite").write_bytes(TINY.read_bytes())
    check_export(tmp_path)
    (tmp_path / "lesion_segmenter.tflite").write_bytes(
        (FIXTURES / "tiny_uint8.tflite").read_bytes()
    )
    with pytest.raises(ShipError, match="lesion_segmenter.json"):
        check_export(tmp_path)


def test_add_measurements_repacks_the_file_with_the_test_split_and_the_framing_decision(tmp_path):
    """`--add-measurements` keeps the network, records the evaluation and the framing decision in
    the file's JSON and its report, and the crop flag follows the decision."""
    from export.segmentation import (
        REPORT_STEM,
        SEGMENTER_TFLITE,
        add_measurements,
        segmenter_info,
        segmenter_metadata,
    )

    measured = {
        "variant": "int8 (uint8 input and output)",
        "calibration_images": 8,
        "val_photos": 4,
        "val_dice_keras_mean": 0.8,
        "val_dice_tflite_mean": 0.79,
        "val_dice_tflite_vs_keras_mean": 0.97,
        "val_dice_tflite_vs_keras_min": 0.9,
        "ms_per_image_litert_2_threads": 1.5,
    }
    packed = segmenter_metadata(TINY.read_bytes(), segmenter_info(64, measured=measured))
    (tmp_path / SEGMENTER_TFLITE).write_bytes(packed)
    stat = {"value": 0.7, "interval": [0.6, 0.8]}
    evaluation, framing = tmp_path / "evaluation", tmp_path / "framing"
    evaluation.mkdir()
    framing.mkdir()
    (evaluation / "report.json").write_text(
        json.dumps(
            {
                "split": "test",
                "photos": 5,
                "patients": 3,
                "dice": {"mean": stat, "median": stat, "p5": stat},
                "jaccard": {"mean": stat, "median": stat, "p5": stat},
                "dice_below_0_5": 1,
                "not recorded": 0,
            }
        )
    )
    row = {"balanced_accuracy": 0.6, "malignant_sensitivity": 0.9, "n": 7, "not recorded": 1}
    (framing / "framing.json").write_text(
        json.dumps(
            {"split": "val", "decision": "ship the crop", "scopes": {"all": row}, "ship_crop": True}
        )
    )

    path = add_measurements(tmp_path, evaluation, framing)

    data = path.read_bytes()
    info = json.loads(read_associated_files(data)[SEGMENTER_FILE])
    assert info["measured"]["test_split"]["photos"] == 5
    assert "not recorded" not in info["measured"]["test_split"]
    assert info["measured"]["variant"] == measured["variant"]
    assert info["framing_measured"]["scopes"] == {
        "all": {"balanced_accuracy": 0.6, "malignant_sensitivity": 0.9, "n": 7}
    }
    assert read_segmenter_info(data).crop_before_classifying is True
    report = (tmp_path / f"{REPORT_STEM}.md").read_text()
    assert "Test (5 phone photos, 3 patients)" in report
    assert "Framing measured on val: ship the crop" in report
    assert json.loads((tmp_path / f"{REPORT_STEM}.json").read_text())["file_bytes"] == len(data)
