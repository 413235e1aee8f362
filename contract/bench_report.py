"""The benchmark report (`bench.json`): what `python -m export.bench` measured, and where.

`export.bench` writes it beside the files it timed (models/bench/bench.json); the demo server
reads it back to show the native XNNPACK figures beside the page's own (`demo_server.pages`).
Both go through `BenchReport`, read and written by its fields' types (`contract.jsonclass`):
a row without a figure holds null (a warm-up not asked for, a phone log without percentiles).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from contract.jsonclass import JsonClass, JsonFormatError

BENCH_JSON = "bench.json"
LOCAL_BACKENDS = ("xnnpack", "builtin")  # builtin = LiteRT kernels without default delegates


class BenchReportError(JsonFormatError):
    """The file is not a benchmark report; the message says where and why."""


class _Part(JsonClass):
    omit_none = False  # a figure not measured is written as null, as it always was
    format_error = BenchReportError


@dataclass(frozen=True)
class BenchConfig(_Part):
    """How to benchmark: thread counts, backends and how many runs (as benchmark_model)."""

    threads: tuple[int, ...] = (1,)
    backends: tuple[str, ...] = LOCAL_BACKENDS
    runs: int = 50
    warmup: int = 5
    block: int = 10  # runs per model per round-robin turn


@dataclass(frozen=True)
class BenchRow(_Part):
    """One table row; times in milliseconds, None where the source does not report it.

    `peak_mem_mb` is the peak RSS growth of the process running the model over its baseline
    after imports, like benchmark_model's "memory footprint delta".
    """

    model: str
    size_mb: float | None
    backend: str
    threads: int
    runs: int
    init_ms: float
    first_ms: float
    warmup_avg_ms: float | None
    avg_ms: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    images_per_s: float
    peak_mem_mb: float | None


@dataclass(frozen=True, kw_only=True)
class Machine(_Part):
    """Where it ran (`platform.platform()`, `.processor()`, `.python_version()`)."""

    platform: str
    processor: str
    python: str


@dataclass(frozen=True, kw_only=True)
class BenchReport(_Part):
    machine: Machine
    config: BenchConfig
    rows: tuple[BenchRow, ...]


def write_bench_report(folder: Path, report: BenchReport) -> Path:
    """`folder`/bench.json."""
    path = folder / BENCH_JSON
    path.write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    return path


def read_bench_report(folder: Path) -> BenchReport:
    """`folder`/bench.json; BenchReportError if it is not a report (OSError if unreadable)."""
    path = folder / BENCH_JSON
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise BenchReportError(f"{path} is not JSON: {error}") from None
    return BenchReport.from_json(value, str(path))
