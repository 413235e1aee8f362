"""Where the demo server finds its model files: flag > environment > ./models > the checkout.

No TensorFlow and no real model: the lookup only checks that files exist, so empty files stand in
for the models (the CLI errors tested here all happen before a model is loaded).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from demo_server import config
from demo_server.__main__ import build_parser, main
from demo_server.config import (
    LESION_GATE_ENV,
    LESION_GATE_FILENAME,
    MODEL_ENV,
    MODEL_FILENAME,
    ServerConfig,
    locate_lesion_gate,
    locate_model,
)

REPO = Path(__file__).resolve().parents[2]


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No environment variables, an empty working folder and a checkout without models/."""
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.delenv(LESION_GATE_ENV, raising=False)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    monkeypatch.setattr(config, "REPO_ROOT", checkout)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd, checkout


def test_environment_variable_wins_over_the_working_folder(nowhere, tmp_path, monkeypatch):
    cwd, checkout = nowhere
    touch(cwd / "models" / MODEL_FILENAME)
    touch(checkout / "models" / MODEL_FILENAME)
    chosen = touch(tmp_path / "elsewhere" / "mine.tflite")
    monkeypatch.setenv(MODEL_ENV, str(chosen))
    found = locate_model()
    assert found.path == chosen and found.from_env
    assert ServerConfig().model_path == chosen
    assert build_parser().parse_args([]).model == chosen


def test_flag_wins_over_the_environment_variable(nowhere, tmp_path, monkeypatch):
    monkeypatch.setenv(MODEL_ENV, str(touch(tmp_path / "env.tflite")))
    flag = tmp_path / "flag.tflite"
    assert build_parser().parse_args(["--model", str(flag)]).model == flag


def test_working_folder_models_is_used(nowhere):
    cwd, checkout = nowhere
    here = touch(cwd / "models" / MODEL_FILENAME)
    touch(checkout / "models" / MODEL_FILENAME)
    found = locate_model()
    assert found.path == here and found.path.is_absolute() and not found.from_env
    assert ServerConfig().model_path == here


def test_checkout_models_is_the_last_resort(nowhere):
    cwd, checkout = nowhere
    shipped = touch(checkout / "models" / MODEL_FILENAME)
    found = locate_model()
    assert found.path == shipped
    assert found.tried == (cwd / "models" / MODEL_FILENAME, shipped)


def test_empty_environment_variable_counts_as_unset(nowhere, monkeypatch):
    cwd, _ = nowhere
    here = touch(cwd / "models" / MODEL_FILENAME)
    monkeypatch.setenv(MODEL_ENV, "")
    assert locate_model().path == here


def test_nothing_found_exits_2_naming_the_places_tried(nowhere, capsys):
    cwd, checkout = nowhere
    found = locate_model()
    assert found.path is None
    with pytest.raises(SystemExit) as excinfo:
        main([])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "no model file found" in err
    assert str(cwd / "models" / MODEL_FILENAME) in err
    assert str(checkout / "models" / MODEL_FILENAME) in err
    assert "--model PATH" in err and f"{MODEL_ENV}=PATH" in err


def test_missing_file_named_by_the_environment_is_an_error(nowhere, monkeypatch, capsys):
    cwd, _ = nowhere
    touch(cwd / "models" / MODEL_FILENAME)  # would be found, but the variable says otherwise
    missing = cwd / "typo.tflite"
    monkeypatch.setenv(MODEL_ENV, str(missing))
    with pytest.raises(SystemExit) as excinfo:
        main([])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert f"model file not found: {missing} (from ${MODEL_ENV})" in err


def test_lesion_gate_lookup(nowhere, tmp_path, monkeypatch, capsys):
    cwd, checkout = nowhere
    assert locate_lesion_gate().path is None and ServerConfig().lesion_gate_path is None
    shipped = touch(checkout / "models" / LESION_GATE_FILENAME)
    assert ServerConfig().lesion_gate_path == shipped
    here = touch(cwd / "models" / LESION_GATE_FILENAME)
    assert build_parser().parse_args([]).lesion_gate == here
    chosen = touch(tmp_path / "gate.tflite")
    monkeypatch.setenv(LESION_GATE_ENV, str(chosen))
    assert ServerConfig().lesion_gate_path == chosen
    assert build_parser().parse_args(["--no-lesion-gate"]).lesion_gate is None
    # A gate named by the environment that does not exist is an error, not "no gate".
    monkeypatch.setenv(LESION_GATE_ENV, str(tmp_path / "typo.tflite"))
    with pytest.raises(SystemExit) as excinfo:
        main(["--model", str(touch(tmp_path / "m.tflite"))])
    assert excinfo.value.code == 2
    assert f"(from ${LESION_GATE_ENV})" in capsys.readouterr().err


def installed_copy(tmp_path: Path) -> Path:
    """The server's packages copied away from the checkout, as `pip install .` places them."""
    site = tmp_path / "site-packages"
    for package in ("demo_server", "contract"):
        shutil.copytree(
            REPO / package, site / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return site


def run_server_module(site: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (MODEL_ENV, LESION_GATE_ENV)}
    env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, "-m", "demo_server", "--port", "8123"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_installed_package_outside_the_checkout(tmp_path):
    """Without models/ next to the package: a clear error, or ./models/ when it is there."""
    site = installed_copy(tmp_path)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = run_server_module(site, cwd)
    assert result.returncode == 2, result.stderr
    assert "no model file found" in result.stderr
    assert str(cwd / "models" / MODEL_FILENAME) in result.stderr
    assert str(site / "models" / MODEL_FILENAME) in result.stderr  # beside the package: absent
    assert f"set {MODEL_ENV}=PATH" in result.stderr
    # A file in ./models/ is picked up (this one is no model, so loading it fails).
    (cwd / "models").mkdir()
    (cwd / "models" / MODEL_FILENAME).write_bytes(b"not a model")
    result = run_server_module(site, cwd)
    assert result.returncode == 2 and "LiteRT cannot load" in result.stderr, result.stderr
