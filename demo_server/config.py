"""Server configuration in one dataclass, so the CLI, the app factory and tests agree."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_PATH = REPO_ROOT / "models" / "skin_lesion_int8_mixed.tflite"
DEFAULT_SAMPLES_DIR = REPO_ROOT / "sample_images"
DEFAULT_LESION_GATE_PATH = REPO_ROOT / "models" / "lesion_gate.tflite"


def default_lesion_gate_path() -> Path | None:
    """The shipped "not a skin lesion" gate when it is in the repo, else None (no gate)."""
    return DEFAULT_LESION_GATE_PATH if DEFAULT_LESION_GATE_PATH.is_file() else None


@dataclass(frozen=True)
class ServerConfig:
    """Everything the app needs besides Flask's own settings.

    In a Flask config mapping each field is spelled in upper case (``MODEL_PATH``, ...), except
    ``max_request_bytes`` which is Flask's own ``MAX_CONTENT_LENGTH``. ``LESION_GATE_PATH``
    present but None (or False / "") means "no gate"; absent means the default.
    """

    model_path: Path = DEFAULT_MODEL_PATH
    samples_dir: Path = DEFAULT_SAMPLES_DIR
    max_request_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    unsure_below: float = 0.5
    interpreters: int = 4
    explain_grid: int = 7
    pool_timeout_s: float = 30.0
    lesion_gate_path: Path | None = field(default_factory=default_lesion_gate_path)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> ServerConfig:
        """Pick this dataclass's fields out of a Flask-style (upper-case) config mapping."""
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            key = "MAX_CONTENT_LENGTH" if item.name == "max_request_bytes" else item.name.upper()
            if item.name == "lesion_gate_path" and key in mapping:
                gate = mapping[key]
                values[item.name] = Path(gate) if gate else None  # given as None: no gate
            elif mapping.get(key) is not None:
                values[item.name] = mapping[key]
        config = cls(**values)
        return dataclasses.replace(
            config, model_path=Path(config.model_path), samples_dir=Path(config.samples_dir)
        )

    def flask_config(self) -> dict[str, Any]:
        """The same settings as a Flask config mapping (``create_app`` takes this)."""
        out = {f.name.upper(): getattr(self, f.name) for f in dataclasses.fields(self)}
        out["MAX_CONTENT_LENGTH"] = out.pop("MAX_REQUEST_BYTES")
        return out
