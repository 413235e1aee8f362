"""export.ship: models/ is replaced by a passing export folder, all at once, or not at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from export.ship import ShipError, check_export, main, ship

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def export_folder(root: Path, passed: bool = True) -> Path:
    folder = root / "export"
    (folder / "evaluation").mkdir(parents=True)
    shutil.copyfile(FIXTURES / "tiny_uint8.tflite", folder / "skin_lesion_int8_mixed.tflite")
    (folder / "verification.json").write_text(json.dumps({"passed": passed, "failures": []}))
    (folder / "evaluation" / "metrics.json").write_text("{}")
    return folder


def old_models(root: Path) -> Path:
    models = root / "models"
    models.mkdir()
    (models / "skin_lesion_float32.tflite").write_bytes(b"old")
    (models / "verification.json").write_text("{}")
    return models


def test_ship_replaces_every_file_of_models(tmp_path: Path):
    models = old_models(tmp_path)
    shipped = ship(export_folder(tmp_path), models)
    names = sorted(p.relative_to(models).as_posix() for p in shipped)
    assert names == [
        "evaluation/metrics.json",
        "skin_lesion_int8_mixed.tflite",
        "verification.json",
    ]
    assert not (models / "skin_lesion_float32.tflite").exists()  # nothing old is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "models"]  # no leftovers


def companion(folder: Path, passed: bool = True) -> Path:
    """The small-phone network's export, in a subfolder of the main export."""
    small = folder / "small"
    small.mkdir()
    shutil.copyfile(FIXTURES / "tiny_int8.tflite", small / "skin_lesion_small_int8.tflite")
    (small / "verification.json").write_text(json.dumps({"passed": passed, "failures": []}))
    return small


def test_a_companion_export_ships_with_the_main_one(tmp_path: Path):
    models = old_models(tmp_path)
    folder = export_folder(tmp_path)
    companion(folder)
    classifiers = check_export(folder)
    assert [p.relative_to(folder).as_posix() for p in classifiers] == [
        "skin_lesion_int8_mixed.tflite",
        "small/skin_lesion_small_int8.tflite",
    ]
    ship(folder, models)
    assert (models / "small" / "skin_lesion_small_int8.tflite").is_file()


def test_a_failed_companion_blocks_the_whole_ship(tmp_path: Path, capsys):
    models = old_models(tmp_path)
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    folder = export_folder(tmp_path)
    small = companion(folder, passed=False)
    assert main([str(folder), "--models", str(models)]) == 1
    assert f"{small / 'verification.json'}: the accuracy gate failed" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before
    (small / "skin_lesion_small_int8.tflite").unlink()
    (small / "verification.json").write_text(json.dumps({"passed": True}))
    with pytest.raises(ShipError, match="holds no skin_lesion_"):
        check_export(folder)


def test_a_failed_gate_leaves_models_untouched(tmp_path: Path, capsys):
    models = old_models(tmp_path)
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    folder = export_folder(tmp_path, passed=False)
    assert main([str(folder), "--models", str(models)]) == 1
    assert "accuracy gate failed" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda f: (f / "verification.json").unlink(), "verification.json not found"),
        (lambda f: (f / "verification.json").write_text("[]"), "not an export report"),
        (lambda f: (f / "skin_lesion_int8_mixed.tflite").unlink(), "holds no skin_lesion_"),
        (
            lambda f: (f / "skin_lesion_int8_mixed.tflite").write_bytes(b"junk"),
            "not a TFLite model",
        ),
        (lambda f: (f / "lesion_gate.tflite").write_bytes(b"junk"), "not a TFLite model"),
    ],
)
def test_an_incomplete_export_is_refused(tmp_path: Path, damage, reason):
    folder = export_folder(tmp_path)
    damage(folder)
    with pytest.raises(ShipError, match=reason):
        check_export(folder)


def test_ship_cli_usage_errors(tmp_path: Path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing")])
    assert "no such folder" in capsys.readouterr().err
    models = old_models(tmp_path)
    with pytest.raises(SystemExit):
        main([str(models), "--models", str(models)])
    assert "is the models folder itself" in capsys.readouterr().err


def test_the_committed_models_folder_is_what_the_apps_need_within_40_mb():
    models = FIXTURES.parents[1] / "models"
    files = [p for p in models.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 40 * 10**6
    assert sorted(p.name for p in models.glob("*.tflite")) == [
        "lesion_gate.tflite",
        "lesion_segmenter.tflite",
        "skin_lesion_int8_mixed.tflite",
    ]
    check_export(models)  # what is shipped could be shipped again: gate passed, files readable


def test_exports_default_to_the_run_and_never_write_into_models(tmp_path: Path, monkeypatch):
    from export.ship import export_folder

    monkeypatch.chdir(tmp_path)
    assert export_folder(Path("runs/a"), None) == Path("runs/a/export")
    assert export_folder(Path("runs/a"), Path("elsewhere")) == Path("elsewhere")
    with pytest.raises(ValueError, match="python -m export.ship"):
        export_folder(Path("runs/a"), Path("models"))
