"""The stages share only `contract`: export imports nothing of train, train nothing of export,
and contract neither of them nor TensorFlow/Keras (read from the source, lazy imports included).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "export": {"train", "demo_server"},
    "train": {"export", "demo_server"},
    "contract": {"train", "export", "demo_server", "tensorflow", "keras"},
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
