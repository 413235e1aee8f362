"""contract.bench_report: every committed bench.json reads as a BenchReport and writes back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.bench_report import (
    BENCH_JSON,
    BenchReport,
    BenchReportError,
    read_bench_report,
    write_bench_report,
)

REPO = Path(__file__).resolve().parents[2]
REPORTS = sorted(REPO.glob(f"models/**/bench/{BENCH_JSON}"))


def test_the_shipped_files_have_reports():
    assert {p.relative_to(REPO).as_posix() for p in REPORTS} >= {
        "models/bench/bench.json",
        "models/small/bench/bench.json",
    }


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_report_reads_and_writes_back_the_same_bytes(path: Path, tmp_path: Path):
    report = read_bench_report(path.parent)
    assert report.rows and all(r.runs == report.config.runs for r in report.rows)
    write_bench_report(tmp_path, report)
    assert (tmp_path / BENCH_JSON).read_text() == path.read_text()


def test_a_figure_not_measured_stays_null():
    value = json.loads(REPORTS[0].read_text())
    value["rows"][0]["warmup_avg_ms"] = None
    report = BenchReport.from_json(value)
    assert report.rows[0].warmup_avg_ms is None
    assert report.to_json()["rows"][0]["warmup_avg_ms"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v["rows"][0].pop("p50_ms"), r"rows\[0\]: missing 'p50_ms'"),
        (lambda v: v["rows"][0].update(threads="4"), r"rows\[0\]\.threads: expected int"),
        (lambda v: v["rows"][0].update(avg_ms=None), r"rows\[0\]\.avg_ms: expected float"),
        (lambda v: v["machine"].update(gpu="none"), r"machine: unknown key\(s\) \['gpu'\]"),
    ],
)
def test_a_malformed_report_names_where(tmp_path: Path, change, message):
    value = json.loads(REPORTS[0].read_text())
    change(value)
    (tmp_path / BENCH_JSON).write_text(json.dumps(value))
    with pytest.raises(BenchReportError, match=message):
        read_bench_report(tmp_path)
    (tmp_path / BENCH_JSON).write_text("{")
    with pytest.raises(BenchReportError, match="is not JSON"):
        read_bench_report(tmp_path)
