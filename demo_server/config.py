"""Server configuration in one dataclass, so the CLI, the app factory and tests agree."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_FILENAME = "skin_lesion_int8_mixed.tflite"
# The single-network classifier for small phones, served beside the default when it exists
# (a companion export: its own card and reports in the subfolder).
SMALL_MODEL_FILENAME = "small/skin_lesion_small_int8.tflite"
LESION_GATE_FILENAME = "lesion_gate.tflite"
SEGMENTER_FILENAME = "lesion_segmenter.tflite"
# Environment variables naming the model files (the --model / --lesion-gate flags win over them).
MODEL_ENV = "SKINLESION_MODEL"
SMALL_MODEL_ENV = "SKINLESION_SMALL_MODEL"
LESION_GATE_ENV = "SKINLESION_LESION_GATE"
SEGMENTER_ENV = "SKINLESION_SEGMENTER"
# The repository checkout's files: found when the package is installed editable (pip install -e)
# or run from the checkout; after a plain `pip install .` they are not next to the package.
DEFAULT_MODEL_PATH = REPO_ROOT / "models" / MODEL_FILENAME
DEFAULT_SAMPLES_DIR = REPO_ROOT / "sample_images"
DEFAULT_LESION_GATE_PATH = REPO_ROOT / "models" / LESION_GATE_FILENAME


@dataclass(frozen=True)
class ModelLocation:
    """Where a default model file was looked for, and which one to use.

    ``path`` is the environment variable's value when it is set (whether or not the file
    exists, so that a typo is reported, not skipped), else the first candidate that is a file,
    else None. ``tried`` lists the candidate files looked at, in order.
    """

    path: Path | None
    env_var: str
    from_env: bool
    tried: tuple[Path, ...]

    def not_found_message(self, flag: str, what: str) -> str:
        """The error text when nothing was found: the places tried and how to name a file."""
        places = "\n".join(f"  {p}" for p in self.tried)
        return (
            f"no {what} file found. Tried ${self.env_var} (not set), then:\n{places}\n"
            f"Pass {flag} PATH or set {self.env_var}=PATH to the .tflite file "
            f"(the repository's models/{self.tried[0].name})."
        )


def locate_model_file(
    filename: str,
    env_var: str,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ModelLocation:
    """Find a shipped model file: ``$env_var`` > ``./models/filename`` > the checkout's models/.

    ``./models`` is relative to the current working directory (``cwd``), for a plain
    ``pip install .`` run from a checkout or a folder holding the files; the last candidate is
    the ``models/`` folder of the repository that holds this package (an editable install).
    """
    environ = os.environ if environ is None else environ
    value = environ.get(env_var, "")
    if value:
        path = Path(value).expanduser()
        return ModelLocation(path, env_var, from_env=True, tried=(path,))
    here = (Path.cwd() if cwd is None else cwd) / "models" / filename
    candidates = tuple(dict.fromkeys((here, REPO_ROOT / "models" / filename)))
    found = next((p for p in candidates if p.is_file()), None)
    return ModelLocation(found, env_var, from_env=False, tried=candidates)


def locate_model(**kwargs: Any) -> ModelLocation:
    """The classifier: ``$SKINLESION_MODEL`` > ./models/ > the checkout's models/."""
    return locate_model_file(MODEL_FILENAME, MODEL_ENV, **kwargs)


def locate_small_model(**kwargs: Any) -> ModelLocation:
    """The small classifier: ``$SKINLESION_SMALL_MODEL`` > ./models/ > the checkout's models/."""
    return locate_model_file(SMALL_MODEL_FILENAME, SMALL_MODEL_ENV, **kwargs)


def locate_lesion_gate(**kwargs: Any) -> ModelLocation:
    """The lesion gate: ``$SKINLESION_LESION_GATE`` > ./models/ > the checkout's models/."""
    return locate_model_file(LESION_GATE_FILENAME, LESION_GATE_ENV, **kwargs)


def locate_segmenter(**kwargs: Any) -> ModelLocation:
    """The lesion segmenter: ``$SKINLESION_SEGMENTER`` > ./models/ > the checkout's models/."""
    return locate_model_file(SEGMENTER_FILENAME, SEGMENTER_ENV, **kwargs)


def default_model_path() -> Path:
    """The classifier found by ``locate_model``; the checkout's path when none exists (loading
    it then fails with a "not found" error naming that path)."""
    return locate_model().path or DEFAULT_MODEL_PATH


def default_lesion_gate_path() -> Path | None:
    """The "not a skin lesion" gate found by ``locate_lesion_gate``, else None (no gate)."""
    return locate_lesion_gate().path


@dataclass(frozen=True)
class ServerConfig:
    """Everything the app needs besides Flask's own settings.

    In a Flask config mapping each field is spelled in upper case (``MODEL_PATH``, ...), except
    ``max_request_bytes`` which is Flask's own ``MAX_CONTENT_LENGTH``. ``LESION_GATE_PATH``
    present but None (or False / "") means "no gate"; absent means the default. The default
    model files are looked up by ``locate_model`` / ``locate_lesion_gate`` when the config is
    made (environment variable, then ./models/, then the checkout's models/).
    """

    model_path: Path = field(default_factory=default_model_path)
    # More classifiers a request may name with ?model=ID (the file name without .tflite);
    # model_path stays the default. None unless named; the CLI names the small one it finds.
    more_model_paths: tuple[Path, ...] = ()
    # The classifier the page shows when its address names none (a model id; the API's default
    # stays model_path). None: model_path. The CLI names the small one when it serves it: a
    # phone's first visit then downloads 3.3 MB of classifier instead of 14 (docs/on_device.md).
    page_model: str | None = None
    samples_dir: Path = DEFAULT_SAMPLES_DIR
    max_request_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    unsure_below: float = 0.5
    interpreters: int = 4
    explain_grid: int = 7
    pool_timeout_s: float = 30.0
    # The decode budget of one upload (contract.images.DecodeBudget; the pixel cap is
    # max_pixels): memory its decoding may take, and a JPEG's scans x pixels (decode time).
    max_decode_bytes: int = 256 * 2**20
    max_scan_pixels: int = 1_000_000_000
    # Heavy decodes (demo_server.images.HEAVY_DECODE_BYTES) run at most decode_slots at a time;
    # at most decode_queue more wait, each up to decode_wait_s, the rest get 503 busy.
    decode_slots: int = 2
    decode_queue: int = 4
    decode_wait_s: float = 5.0
    # Memory for gzip-compressed copies of the runtime and model files the page downloads
    # (demo_server.compression); 0 sends them uncompressed.
    gzip_cache_bytes: int = 64 * 2**20
    lesion_gate_path: Path | None = field(default_factory=default_lesion_gate_path)
    # The lesion segmenter (outline, "no spot" / "several spots"): none unless named; the CLI
    # names the one locate_segmenter finds.
    segmenter_path: Path | None = None

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> ServerConfig:
        """Pick this dataclass's fields out of a Flask-style (upper-case) config mapping."""
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            key = "MAX_CONTENT_LENGTH" if item.name == "max_request_bytes" else item.name.upper()
            if item.name in ("lesion_gate_path", "segmenter_path") and key in mapping:
                gate = mapping[key]
                values[item.name] = Path(gate) if gate else None  # given as None: no gate
            elif mapping.get(key) is not None:
                values[item.name] = mapping[key]
        config = cls(**values)
        return dataclasses.replace(
            config,
            model_path=Path(config.model_path),
            more_model_paths=tuple(Path(p) for p in config.more_model_paths),
            samples_dir=Path(config.samples_dir),
        )

    def flask_config(self) -> dict[str, Any]:
        """The same settings as a Flask config mapping (``create_app`` takes this)."""
        out = {f.name.upper(): getattr(self, f.name) for f in dataclasses.fields(self)}
        out["MAX_CONTENT_LENGTH"] = out.pop("MAX_REQUEST_BYTES")
        return out
