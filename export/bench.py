"""Latency and memory benchmark of `.tflite` files with LiteRT, in the spirit of `benchmark_model`.

Why: we choose between float/int8 variants, thread counts and XNNPACK on/off by numbers measured
the same way everywhere. Each (model, threads, backend) runs in its own process so peak-memory
readings do not mix, and models are interleaved in blocks of runs (round-robin, rotating who goes
first) so a noisy machine hurts every model alike. On a phone the official `benchmark_model`
binary is the reference: `--android` writes an adb script for it and `--android-logs` turns its
logs into the same table via `parse_benchmark_model_output`.

    python -m export.bench a.tflite b.tflite --threads 1,2,4 --runs 100 --out reports/bench
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from contract.bench_report import (
    LOCAL_BACKENDS,
    BenchConfig,
    BenchReport,
    BenchRow,
    Machine,
    write_bench_report,
)
from contract.commands import comma_list, comma_separated

ANDROID_BACKENDS = {
    "xnnpack": "--use_xnnpack=true",
    "cpu": "--use_xnnpack=false",
    "gpu": "--use_gpu=true",
    "nnapi": "--use_nnapi=true",
}
ANDROID_DEVICE_DIR = "/data/local/tmp/skinlesion_bench"


# ----------------------------------------------------------------------------- local runs


def _status_kb(field: str) -> int | None:
    """A `VmRSS`/`VmHWM` line of /proc/self/status in kB (None off Linux)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0) so imports do not count as the model's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _worker(conn: Connection, model_path: str, threads: int, backend: str, warmup: int) -> None:
    """Child process: load one model, report init/first/warm-up, then time runs on request."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = (
        OpResolverType.AUTO
        if backend == "xnnpack"
        else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    peak_is_reset = _reset_peak_rss()
    baseline_kb = _status_kb("VmRSS")
    start = time.perf_counter()
    interpreter = Interpreter(
        model_path=model_path, num_threads=threads, experimental_op_resolver_type=resolver
    )
    interpreter.allocate_tensors()
    init_ms = (time.perf_counter() - start) * 1e3
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            data = rng.uniform(0, 255, detail["shape"]).astype(dtype)
        else:
            info = np.iinfo(dtype)
            data = rng.integers(info.min, info.max, detail["shape"], endpoint=True, dtype=dtype)
        interpreter.set_tensor(detail["index"], data)

    def timed(n: int) -> list[float]:
        times = []
        for _ in range(n):
            begin = time.perf_counter()
            interpreter.invoke()
            times.append((time.perf_counter() - begin) * 1e3)
        return times

    conn.send((init_ms, timed(1)[0], timed(warmup)))
    while (request := conn.recv()) is not None:
        conn.send(timed(request))
    peak_kb = _status_kb("VmHWM")
    usable = peak_is_reset and peak_kb is not None and baseline_kb is not None
    conn.send((peak_kb - baseline_kb) / 1024 if usable else None)


@dataclass
class _Session:
    model: Path
    conn: Connection
    process: multiprocessing.Process
    init_ms: float
    first_ms: float
    warmup_ms: list[float]


def _start(model: Path, threads: int, backend: str, warmup: int) -> _Session:
    context = multiprocessing.get_context("spawn")  # a clean process: no inherited heap or threads
    parent, child = context.Pipe()
    process = context.Process(
        target=_worker, args=(child, str(model), threads, backend, warmup), daemon=True
    )
    process.start()
    child.close()
    try:
        init_ms, first_ms, warmup_ms = parent.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"{model}: the benchmark process died while loading it") from None
    return _Session(model, parent, process, init_ms, first_ms, warmup_ms)


def _row(
    session: _Session, backend: str, threads: int, latencies: list[float], peak: float | None
) -> BenchRow:
    avg = statistics.fmean(latencies)
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99]).tolist()
    return BenchRow(
        model=session.model.name,
        size_mb=session.model.stat().st_size / 1e6,
        backend=backend,
        threads=threads,
        runs=len(latencies),
        init_ms=session.init_ms,
        first_ms=session.first_ms,
        warmup_avg_ms=statistics.fmean(session.warmup_ms) if session.warmup_ms else None,
        avg_ms=avg,
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        images_per_s=1e3 / avg,
        peak_mem_mb=peak,
    )


def benchmark(models: Sequence[Path], config: BenchConfig) -> list[BenchRow]:
    """Benchmark every model under every (threads, backend), models interleaved block by block."""
    rows = []
    for threads in config.threads:
        for backend in config.backends:
            # Started one after another so a starting process never disturbs another's timing.
            sessions = [_start(m, threads, backend, config.warmup) for m in models]
            latencies: list[list[float]] = [[] for _ in sessions]
            done, turn = 0, 0
            while done < config.runs:
                n = min(config.block, config.runs - done)
                order = [(turn + k) % len(sessions) for k in range(len(sessions))]
                for index in order:
                    sessions[index].conn.send(n)
                    latencies[index].extend(sessions[index].conn.recv())
                done, turn = done + n, turn + 1
            for session, times in zip(sessions, latencies, strict=True):
                session.conn.send(None)
                rows.append(_row(session, backend, threads, times, session.conn.recv()))
                session.process.join()
    return rows


# ----------------------------------------------------------------------------- Android


def android_script(models: Sequence[Path], config: BenchConfig) -> str:
    """A bash script that pushes the models and runs the official benchmark_model over adb.

    Logs land in `android_logs/<model>__<backend>__t<threads>.log` next to the script, named so
    that `--android-logs` can parse them back into table rows.
    """
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model file names must be unique on the device: {names}")
    lines = [
        "#!/usr/bin/env bash",
        "# Generated by `python -m export.bench --android`: runs TFLite's official benchmark_model",
        "# on a phone over adb. Get the prebuilt binary (android_aarch64_benchmark_model) as the",
        "# LiteRT docs describe (performance/measurement), or set BENCHMARK_MODEL to your build.",
        "# NNAPI is deprecated from Android 15; its rows are for older devices only.",
        "set -euo pipefail",
        'BENCHMARK_MODEL="${BENCHMARK_MODEL:-./android_aarch64_benchmark_model}"',
        f"DEVICE_DIR={ANDROID_DEVICE_DIR}",
        'LOG_DIR="$(cd "$(dirname "$0")" && pwd)/android_logs"',
        f"RUNS={config.runs}",
        f"WARMUP={config.warmup}",
        'mkdir -p "$LOG_DIR"',
        'adb shell mkdir -p "$DEVICE_DIR"',
        'adb push "$BENCHMARK_MODEL" "$DEVICE_DIR/benchmark_model"',
        'adb shell chmod +x "$DEVICE_DIR/benchmark_model"',
        *(f'adb push {shlex.quote(str(m.resolve()))} "$DEVICE_DIR/"' for m in models),
        "",
        "run() {  # model threads backend flag",
        '  local log="$LOG_DIR/$1__$3__t$2.log"',
        '  if ! adb shell "$DEVICE_DIR/benchmark_model" --graph="$DEVICE_DIR/$1" \\',
        '      --num_threads="$2" --num_runs="$RUNS" --warmup_runs="$WARMUP" "$4" >"$log" 2>&1',
        '  then echo "failed: $1 $3 threads=$2 (see $log)"; fi',
        "}",
        "",
    ]
    for name in names:
        for threads in config.threads:
            for backend, flag in ANDROID_BACKENDS.items():
                lines.append(f"run {shlex.quote(name)} {threads} {backend} {flag}")
    lines += ["", 'echo "Now: python -m export.bench --android-logs $LOG_DIR"', ""]
    return "\n".join(lines)


_NUMBER = r"([0-9.]+(?:e[+-]?[0-9]+)?)"


def _find(pattern: str, text: str) -> float | None:
    matches = re.findall(pattern, text)
    return float(matches[-1]) if matches else None


def parse_benchmark_model_output(text: str, model: str, backend: str, threads: int) -> BenchRow:
    """Turn benchmark_model's stdout into a row (it reports p50 as `median`, no p90/p99).

    Raises ValueError if the summary line is missing, i.e. the run failed.
    """
    summary = re.search(
        rf"Inference timings in us: Init: {_NUMBER}, First inference: {_NUMBER}, "
        rf"Warmup \(avg\): {_NUMBER}, Inference \(avg\): {_NUMBER}",
        text,
    )
    if summary is None:
        raise ValueError(f"{model}/{backend}/t{threads}: no 'Inference timings' line in the log")
    init_us, first_us, warmup_us, avg_us = (float(g) for g in summary.groups())
    # The last "count=… first=…" line is the measured run (the earlier one is the warm-up).
    steady = re.findall(r"count=\d+ first=.*", text)
    runs = int(_find(r"count=(\d+)", steady[-1])) if steady else 0
    median_us = _find(rf"median={_NUMBER}", steady[-1]) if steady else None
    peak = _find(rf"Overall peak memory footprint \(MB\) via periodic monitoring: {_NUMBER}", text)
    if peak is None:  # older binaries: "Memory footprint delta ... (MB): init=… overall=…"
        peak = _find(rf"(?:Memory footprint delta|Peak memory footprint).*overall={_NUMBER}", text)
    return BenchRow(
        model=model,
        size_mb=_find(rf"The input model file size \(MB\): {_NUMBER}", text),
        backend=backend,
        threads=threads,
        runs=runs,
        init_ms=init_us / 1e3,
        first_ms=first_us / 1e3,
        warmup_avg_ms=warmup_us / 1e3,
        avg_ms=avg_us / 1e3,
        p50_ms=median_us / 1e3 if median_us is not None else None,
        p90_ms=None,
        p99_ms=None,
        images_per_s=1e6 / avg_us,
        peak_mem_mb=peak,
    )


def parse_android_logs(log_dir: Path) -> list[BenchRow]:
    """Rows from the `<model>__<backend>__t<threads>.log` files the Android script writes."""
    rows = []
    for log in sorted(log_dir.glob("*.log")):
        model, backend, threads = log.stem.rsplit("__", 2)
        rows.append(
            parse_benchmark_model_output(
                log.read_text(errors="replace"), model, backend, int(threads.removeprefix("t"))
            )
        )
    return rows


# ----------------------------------------------------------------------------- report


_COLUMNS = [
    ("model", "model", "{}"),
    ("size_mb", "size MB", "{:.2f}"),
    ("backend", "backend", "{}"),
    ("threads", "threads", "{}"),
    ("runs", "runs", "{}"),
    ("init_ms", "init ms", "{:.1f}"),
    ("first_ms", "first ms", "{:.3f}"),
    ("warmup_avg_ms", "warm-up avg ms", "{:.3f}"),
    ("avg_ms", "avg ms", "{:.3f}"),
    ("p50_ms", "p50 ms", "{:.3f}"),
    ("p90_ms", "p90 ms", "{:.3f}"),
    ("p99_ms", "p99 ms", "{:.3f}"),
    ("images_per_s", "images/s", "{:.1f}"),
    ("peak_mem_mb", "peak mem MB", "{:.1f}"),
]


def markdown_table(rows: Sequence[BenchRow]) -> str:
    """The rows as a Markdown table; `n/a` where the source does not report a value."""
    lines = [
        "| " + " | ".join(title for _, title, _ in _COLUMNS) + " |",
        "|" + "|".join("---" for _ in _COLUMNS) + "|",
    ]
    for row in rows:
        values = asdict(row)
        cells = [
            "n/a" if values[key] is None else fmt.format(values[key]) for key, _, fmt in _COLUMNS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(rows: Sequence[BenchRow], config: BenchConfig, out_dir: Path) -> Path:
    """Write bench.md and bench.json (rows + config + machine) into `out_dir`; return the md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = Machine(
        platform=platform.platform(),
        processor=platform.processor(),
        python=platform.python_version(),
    )
    write_bench_report(out_dir, BenchReport(machine=machine, config=config, rows=tuple(rows)))
    markdown = out_dir / "bench.md"
    markdown.write_text(
        f"# Benchmark\n\n{machine.platform}; warm-up {config.warmup}, runs {config.runs}.\n\n"
        + markdown_table(rows)
    )
    return markdown


# ----------------------------------------------------------------------------- CLI


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such model file: {text}")
    with path.open("rb") as file:
        if file.read(8)[4:] != b"TFL3":  # the flatbuffer file identifier of TFLite models
            raise argparse.ArgumentTypeError(f"not a TFLite model: {text}")
    return path


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= minimum, with a readable error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}: {value}")
        return value

    return parse


def _thread_list(text: str) -> tuple[int, ...]:
    threads = tuple(comma_separated(int, "1,2,4")(text))
    if any(t < 1 for t in threads) or len(set(threads)) != len(threads):
        raise argparse.ArgumentTypeError(f"thread counts must be unique and >= 1: {text!r}")
    return threads


def _backend_list(text: str) -> tuple[str, ...]:
    backends = tuple(comma_list(text))
    unknown = set(backends) - set(LOCAL_BACKENDS)
    if unknown or len(set(backends)) != len(backends):
        raise argparse.ArgumentTypeError(
            f"backends must be unique, from {LOCAL_BACKENDS}: {text!r}"
        )
    return backends


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.bench",
        description="Benchmark .tflite models with LiteRT (or write an Android benchmark script).",
    )
    parser.add_argument("models", nargs="*", type=_existing_file, metavar="MODEL.tflite")
    parser.add_argument("--threads", type=_thread_list, default=(1,), help="e.g. 1,2,4")
    parser.add_argument(
        "--backends",
        type=_backend_list,
        default=LOCAL_BACKENDS,
        help="xnnpack (default delegate) and/or builtin (XNNPACK off)",
    )
    parser.add_argument("--runs", type=_int_at_least(1), default=50)
    parser.add_argument("--warmup", type=_int_at_least(0), default=5)
    parser.add_argument(
        "--block", type=_int_at_least(1), default=10, help="runs per model per round-robin turn"
    )
    parser.add_argument("--out", type=Path, default=Path("bench_results"))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--android",
        action="store_true",
        help="write OUT/run_android_benchmark.sh instead of running here",
    )
    mode.add_argument(
        "--android-logs",
        type=Path,
        metavar="DIR",
        help="tabulate the logs the Android script collected",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    config = BenchConfig(
        threads=args.threads,
        backends=args.backends,
        runs=args.runs,
        warmup=args.warmup,
        block=args.block,
    )
    if args.android_logs is not None:
        if not args.android_logs.is_dir():
            parser.error(f"--android-logs: no such directory: {args.android_logs}")
        rows = parse_android_logs(args.android_logs)
    elif not args.models:
        parser.error("give at least one MODEL.tflite (or --android-logs DIR)")
    elif args.android:
        try:
            script = android_script(args.models, config)
        except ValueError as error:
            parser.error(str(error))
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "run_android_benchmark.sh"
        path.write_text(script)
        path.chmod(0o755)
        print(f"wrote {path}")
        return 0
    else:
        rows = benchmark(args.models, config)
    markdown = write_report(rows, config, args.out)
    sys.stdout.write(markdown_table(rows))
    print(f"wrote {markdown} and {markdown.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
