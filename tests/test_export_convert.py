"""Which operators int8_mixed keeps in float, over the whole file or per ensemble member."""

from __future__ import annotations

import pytest

from export.__main__ import parse_args
from export.convert import QuantizationConfig, QuantizationError, pick_damaged

ENSEMBLE = "skin_lesion_ensemble_of_3_1"


def row(name: str, error: float, scale: float = 1.0) -> dict[str, str]:
    """One row of QuantizationDebugger.layer_statistics_dump (only the columns used)."""
    return {"tensor_name": name, "mean_squared_error": str(error**2), "scale": str(scale)}


def op(member: int, index: int) -> str:
    # A fused name, as the converter writes it: several paths joined by ";".
    path = f"{ENSEMBLE}/member{member}_1/efficientnet_lite0_1/block{index}_conv_1"
    return f"{path}/Relu6;{path}/convolution;1"


# member0 is damaged most everywhere, member2 least; one operator belongs to no member.
ROWS = [
    *(row(op(0, i), 10.0 - i) for i in range(6)),
    *(row(op(1, i), 3.0 - i / 10) for i in range(6)),
    *(row(op(2, i), 1.0 - i / 10) for i in range(6)),
    row(f"{ENSEMBLE}/probability_1/Add", 2.0),
]


def test_whole_file_takes_the_worst_wherever_they_are():
    assert pick_damaged(ROWS, 4, per_network=False) == [op(0, i) for i in range(4)]


def test_error_is_measured_in_quantization_steps():
    rows = [row("a/member0_1/x", 1.0, scale=0.01), row("a/member1_1/y", 50.0, scale=1.0)]
    assert pick_damaged(rows, 1, per_network=False) == ["a/member0_1/x"]


def test_per_network_gives_each_member_its_share():
    picked = pick_damaged(ROWS, 6, per_network=True)
    assert picked == [op(0, 0), op(0, 1), op(1, 0), op(1, 1), op(2, 0), op(2, 1)]


def test_per_network_remainder_follows_the_file_ranking():
    picked = pick_damaged(ROWS, 8, per_network=True)
    assert len(picked) == len(set(picked)) == 8
    assert picked[6:] == [op(0, 2), op(0, 3)]  # 8 // 3 = 2 each, then the worst of the rest


def test_a_single_network_is_ranked_as_a_whole():
    rows = [row(f"model_1/efficientnet_lite0_1/op{i}", float(i)) for i in range(5)]
    expected = pick_damaged(rows, 3, per_network=False)
    assert pick_damaged(rows, 3, per_network=True) == expected
    assert expected == [f"model_1/efficientnet_lite0_1/op{i}" for i in (4, 3, 2)]


@pytest.mark.parametrize("per_network", [False, True])
def test_keeping_every_operator_in_float_is_refused(per_network):
    """Nothing would be left to quantize the uint8 input; the converter's own message does not
    say why."""
    assert len(pick_damaged(ROWS, len(ROWS) - 1, per_network)) == len(ROWS) - 1
    with pytest.raises(QuantizationError, match=f"all {len(ROWS)} of this network's operators"):
        pick_damaged(ROWS, len(ROWS), per_network)


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="float_ops_split"):
        QuantizationConfig("float32", float_ops_split="layer")


def test_cli_offers_only_the_known_splits(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args([str(tmp_path), "--float-ops-split", "layer"])
    assert exit_info.value.code == 2
    assert "--float-ops-split: invalid choice: 'layer'" in capsys.readouterr().err


def finished_run(folder):
    """The files check_run_folder wants of a run (their content is not read here)."""
    folder.mkdir()
    for name in ("model.keras", "model_card.json", "split.csv"):
        (folder / name).write_text("x")
    return folder


def test_cli_names_files_by_their_stem(tmp_path, capsys):
    run = finished_run(tmp_path / "run")
    args = parse_args([str(run), "--file-stem", "skin_lesion_small", "--variants", "int8"])
    assert args.file_stem == "skin_lesion_small" and args.out == run / "export"
    assert parse_args([str(run)]).file_stem == "skin_lesion"
    for bad in ("small", "skin_lesion_", "skin_lesion_Small", "skin_lesion/x"):
        with pytest.raises(SystemExit) as exit_info:
            parse_args([str(run), "--file-stem", bad])
        assert exit_info.value.code == 2
        assert "--file-stem must be skin_lesion" in capsys.readouterr().err
