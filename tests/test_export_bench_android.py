"""export.bench --android: the script runs (against a stand-in adb) and the parser reads real
benchmark_model logs (tests/fixtures/benchmark_model/README.md says where each was recorded)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from export import bench

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LOGS = FIXTURES / "benchmark_model"

# A stand-in for adb over a folder as the phone's file system: push copies, `shell mkdir` and
# `shell chmod` act there, and running the benchmark binary fails unless it and the model were
# pushed (and made executable), else prints the recorded log.
FAKE_ADB = """#!/usr/bin/env bash
set -euo pipefail
root="$FAKE_DEVICE"
if [ "$1" = push ]; then mkdir -p "$root$(dirname "$3/x")"; cp "$2" "$root$3"; exit 0; fi
[ "$1" = shell ] || { echo "unexpected: $*" >&2; exit 2; }
shift
case "$1" in
  mkdir) mkdir -p "$root$3" ;;
  chmod) chmod "$2" "$root$3" ;;
  *)
    [ -x "$root$1" ] || { echo "$1: not found" >&2; exit 127; }
    graph="${2#--graph=}"
    [ -f "$root$graph" ] || { echo "ERROR: Could not open '$graph'." >&2; exit 1; }
    echo "$*" >> "$root/invocations"
    cat "$RECORDED_LOG" ;;
esac
"""


def test_the_parser_reads_recorded_benchmark_model_logs():
    phone = bench.parse_benchmark_model_output(
        (LOGS / "android_espcn_t4.log").read_text(), "espcn.tflite", "cpu", 4
    )
    assert (phone.init_ms, phone.first_ms) == (pytest.approx(0.855), pytest.approx(49.06))
    assert phone.warmup_avg_ms == pytest.approx(34.8251) and phone.avg_ms == pytest.approx(33.2094)
    assert phone.runs == 50 and phone.p50_ms is None  # that binary printed no percentiles
    assert phone.size_mb == pytest.approx(0.004448) and phone.peak_mem_mb == pytest.approx(12.8672)

    linux = bench.parse_benchmark_model_output(
        (LOGS / "linux_mobilenet_quant.log").read_text(), "mobilenet.tflite", "xnnpack", 1
    )
    assert linux.avg_ms == pytest.approx(116.066) and linux.runs == 50
    assert linux.init_ms == pytest.approx(0.53) and linux.size_mb == pytest.approx(4.27635)
    assert linux.peak_mem_mb == pytest.approx(12.1914)  # the "footprint delta" wording


def test_the_android_script_runs_and_its_logs_become_rows(tmp_path: Path):
    models = [FIXTURES / "tiny_uint8.tflite", FIXTURES / "tiny_float32.tflite"]
    script = tmp_path / "run_android_benchmark.sh"
    script.write_text(bench.android_script(models, bench.BenchConfig(threads=(1, 4), runs=20)))
    subprocess.run(["bash", "-n", str(script)], check=True)
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "adb").write_text(FAKE_ADB)
    (tools / "adb").chmod(0o755)
    binary = tmp_path / "android_aarch64_benchmark_model"
    binary.write_bytes(b"\x7fELF stand-in")
    device = tmp_path / "device"
    env = {
        **os.environ,
        "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
        "FAKE_DEVICE": str(device),
        "RECORDED_LOG": str(LOGS / "android_espcn_t4.log"),
        "BENCHMARK_MODEL": str(binary),
    }
    run = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "failed:" not in run.stdout
    invocations = (device / "invocations").read_text().splitlines()
    assert len(invocations) == len(models) * 2 * len(bench.ANDROID_BACKENDS)
    assert any(
        "--num_threads=4 --num_runs=20" in line and "--use_gpu=true" in line for line in invocations
    )
    rows = bench.parse_android_logs(tmp_path / "android_logs")
    assert sorted({(r.model, r.threads, r.backend) for r in rows}) == sorted(
        (m.name, t, b) for m in models for t in (1, 4) for b in bench.ANDROID_BACKENDS
    )
    assert all(r.avg_ms == pytest.approx(33.2094) for r in rows)
