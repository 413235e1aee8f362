"""The stages share only `contract`: export imports nothing of train, train nothing of export,
and contract neither of them nor TensorFlow/Keras (read from the source, lazy imports included).
Only `pipeline`, the driver that runs every stage's steps, imports both; no stage imports it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "export": {"train", "demo_server", "pipeline"},
    "train": {"export", "demo_server", "pipeline"},
    "contract": {"train", "export", "demo_server", "pipeline", "tensorflow", "keras"},
}


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every import in the file, at any depth."""
    packages = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            packages.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            packages.add(node.module.split(".")[0])
    return packages


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_a_stage_imports_no_other_stage(stage: str):
    crossing = {
        str(path.relative_to(REPO)): sorted(imported_packages(path) & FORBIDDEN[stage])
        for path in sorted((REPO / stage).rglob("*.py"))
    }
    assert {path: names for path, names in crossing.items() if names} == {}


# The server's whole world: the base install of pyproject.toml (LiteRT, never TensorFlow) and
# Werkzeug, which Flask brings.
DEMO_SERVER_THIRD_PARTY = {"PIL", "ai_edge_litert", "flask", "numpy", "pillow_heif", "waitress"}
DEMO_SERVER_THIRD_PARTY |= {"werkzeug"}


def test_the_demo_server_imports_only_contract_and_its_base_install():
    allowed = {"contract", "demo_server"} | DEMO_SERVER_THIRD_PARTY | set(sys.stdlib_module_names)
    outside = {
        str(path.relative_to(REPO)): sorted(imported_packages(path) - allowed)
        for path in sorted((REPO / "demo_server").rglob("*.py"))
    }
    assert {path: names for path, names in outside.items() if names} == {}


# Inside train/, lowest first: a package imports only itself and the packages before it; the
# command modules at the top of train/ (and train.cli, their shared options) import any.
TRAIN_LAYERS = ("data", "model", "answers", "gate", "evaluation", "segmentation", "orchestration")


def train_imports(path: Path) -> set[str]:
    """The train/ layer of every train import in the file ("commands" for the top of train/)."""
    layers = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "train":
                inner = parts[1] if len(parts) > 1 else ""
                layers.add(inner if inner in TRAIN_LAYERS else "commands")
    return layers


def test_every_train_package_is_a_known_layer():
    packages = {p.parent.name for p in (REPO / "train").glob("*/__init__.py")}
    assert packages == set(TRAIN_LAYERS)


@pytest.mark.parametrize("layer", TRAIN_LAYERS)
def test_train_layers_import_only_themselves_and_the_layers_below(layer: str):
    above = {"commands", *TRAIN_LAYERS[TRAIN_LAYERS.index(layer) + 1 :]}
    upward = {
        str(path.relative_to(REPO)): sorted(train_imports(path) & above)
        for path in sorted((REPO / "train" / layer).rglob("*.py"))
    }
    assert {path: names for path, names in upward.items() if names} == {}
