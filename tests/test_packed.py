"""The packed data file (`python -m train.pack`, `python -m train --packed`): a split's images,
decoded and resized once, that `train` reads instead of the image folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contract.records import Skipped, decode_records, label_indices
from contract.run_folder import SPLIT_CSV, read_split
from train.data.packed import PackedError, PackedImages
from train.data.pipeline import TrainingBatches, balancing_weights, one_hot

pytestmark = pytest.mark.data

SIZE = 48


@pytest.fixture(scope="module")
def split_csv(data_dir: Path, tmp_path_factory) -> Path:
    from train.__main__ import main

    out = tmp_path_factory.mktemp("split") / "run"
    data = f"{data_dir / 'ham10000'},{data_dir / 'pad_ufes20'}"
    argv = ["--data", data, "--out", str(out), "--max-images-per-class", "5", "--split-only"]
    assert main(argv) == 0
    return out / SPLIT_CSV


@pytest.fixture(scope="module")
def packs(split_csv: Path, tmp_path_factory) -> dict[str, Path]:
    from train.pack import main

    folder = tmp_path_factory.mktemp("packs")
    files = {"jpeg": folder / "jpeg.npz", "png": folder / "png.npz"}
    base = [str(split_csv.parent), "--image-size", str(SIZE)]
    assert main([*base, "--out", str(files["jpeg"])]) == 0
    assert main([*base, "--out", str(files["png"]), "--lossless"]) == 0
    return files


def _epoch(dataset) -> list:
    batches = [dataset[i] for i in range(len(dataset))]
    dataset.on_epoch_end()
    return batches


def _batches(pixels, records, augmented: bool) -> list:
    labels = label_indices(records)
    weights = balancing_weights(records, 20.0)
    dataset = TrainingBatches(pixels, one_hot(labels), weights, 8, augmented, 3, resample=True)
    return _epoch(dataset) + _epoch(dataset)


def test_a_packed_file_holds_the_split_and_its_records(split_csv: Path, packs):
    for path in packs.values():
        packed = PackedImages(path)
        assert packed.image_size == SIZE
        assert packed.splits() == read_split(split_csv)


def test_lossless_packing_gives_identical_batches(split_csv: Path, packs):
    """PNG keeps every pixel, so the batches (JPEG recompression included) are bit-identical to
    those of the image folders."""
    records = read_split(split_csv)["train"]
    folder_pixels, folder_records = decode_records(records, SIZE, Skipped())
    pixels, packed_records = PackedImages(packs["png"]).pixels("train", Skipped())
    assert packed_records == folder_records
    np.testing.assert_array_equal(pixels, folder_pixels)
    folder = _batches(folder_pixels, folder_records, True)
    packed = _batches(pixels, records, True)
    for ours, theirs in zip(packed, folder, strict=True):
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, b)


def test_jpeg_packing_gives_the_same_batches_up_to_its_compression(split_csv: Path, packs):
    """JPEG (quality 75 by default) moves pixels by a few levels on average at 48 px (1.4 at
    224 px); the images drawn, their order, targets and weights are the same."""
    records = read_split(split_csv)["train"]
    folder_pixels, folder_records = decode_records(records, SIZE, Skipped())
    pixels, packed_records = PackedImages(packs["jpeg"]).pixels("train", Skipped())
    assert packed_records == folder_records
    assert np.abs(pixels.astype(float) - folder_pixels).mean() < 5
    folder = _batches(folder_pixels, folder_records, False)
    packed = _batches(pixels, records, False)
    for (x, y, w), (fx, fy, fw) in zip(packed, folder, strict=True):
        np.testing.assert_array_equal(y, fy)
        np.testing.assert_array_equal(w, fw)
        assert np.abs(x.astype(float) - fx).mean() < 5
    assert PackedImages(packs["jpeg"]).path.stat().st_size < 0.5 * packs["png"].stat().st_size


@pytest.mark.slow
def test_train_reads_a_packed_file_and_resumes_from_it(split_csv: Path, packs, tmp_path: Path):
    from train.__main__ import main

    run = tmp_path / "run"
    argv = ["--packed", str(packs["jpeg"]), "--out", str(run), "--backbone", "tiny_cnn"]
    argv += ["--image-size", str(SIZE)]
    assert main([*argv, "--epochs", "1", "--batch-size", "8"]) == 0
    assert (run / SPLIT_CSV).read_bytes() == split_csv.read_bytes()
    hparams = json.loads((run / "hparams.json").read_text())
    (run / "hparams.json").write_text(json.dumps({**hparams, "epochs": 2}))
    assert main(["--out", str(run), "--resume", "--packed", str(packs["jpeg"])]) == 0
    assert json.loads((run / "checkpoints/state.json").read_text())["epoch"] == 2
    assert json.loads((run / "model_card.json").read_text())["training"]["epochs"] == 2


def test_train_refuses_a_packed_file_of_another_size_or_split(
    split_csv: Path, packs, tmp_path: Path, capsys
):
    from train.__main__ import main

    packed = str(packs["jpeg"])
    argv = ["--packed", packed, "--out", str(tmp_path / "a"), "--backbone", "tiny_cnn"]
    assert main([*argv, "--image-size", "64"]) == 2
    assert f"holds {SIZE} px images; this run trains at 64 px" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    rows = split_csv.read_text().splitlines()
    moved = next(i for i, row in enumerate(rows) if row.startswith("val,"))
    rows[moved] = "train," + rows[moved].removeprefix("val,")
    (other / SPLIT_CSV).write_text("\n".join(rows) + "\n")
    hparams = {"backbone": "tiny_cnn", "image_size": SIZE, "epochs": 1}
    (other / "hparams.json").write_text(json.dumps(hparams))
    assert main(["--out", str(other), "--resume", "--packed", packed]) == 2
    assert "holds another split than" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--packed", "P", "--data", "d"], "--packed holds the split and the images; drop"),
        (["--packed", "nowhere.npz"], "--packed nowhere.npz: no such file"),
        (["--data", "d", "--devices", "-1"], "--devices must be at least 0"),
    ],
)
def test_train_cli_packed_usage_errors(argv, message, packs, tmp_path: Path, capsys):
    from train.__main__ import main

    argv = [str(packs["jpeg"]) if a == "P" else a for a in argv]
    with pytest.raises(SystemExit):
        main([*argv, "--out", str(tmp_path / "x")])
    assert message in capsys.readouterr().err


def test_a_file_that_is_not_packed_is_refused(tmp_path: Path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(PackedError, match="write it again with python -m train.pack"):
        PackedImages(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(PackedError, match="not a packed data file"):
        PackedImages(tmp_path / "text.npz")


@pytest.mark.slow
def test_a_recipe_trains_its_members_from_a_packed_file_and_finishes_at_the_folders(
    data_dir: Path, tmp_path: Path, capsys
):
    """The borrowed-GPU workflow (docs/backends.md): pack the recipe's split, train the members
    from the file only, then --resume where the folders are: average, calibrate, answers."""
    from train.orchestration.recipes import load_recipe, run_recipe
    from train.pack import main as pack

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        f"""
[split]
data = ["{data_dir / "ham10000"}", "{data_dir / "pad_ufes20"}"]
[defaults]
backbone = "tiny_cnn"
image_size = {SIZE}
epochs = 1
max_images_per_class = 5
[[members]]
name = "a"
[[members]]
name = "b"
seed = 4
[answers]
strengths = [0.5]
"""
    )
    packed = tmp_path / "tiny.npz"
    assert pack([str(recipe), "--out", str(packed), "--image-size", str(SIZE)]) == 0
    out = tmp_path / "out"
    assert run_recipe(load_recipe(recipe), out, packed=packed) is None
    assert "members trained; to average them" in capsys.readouterr().out
    assert not (out / "model.keras").exists()
    assert PackedImages(packed).splits() == read_split(out / SPLIT_CSV)
    card = run_recipe(load_recipe(recipe), out, resume=True)
    assert card.backbone == "tiny_cnn-ensemble-of-2" and card.answers is not None
