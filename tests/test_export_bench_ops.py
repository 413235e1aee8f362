"""export.bench and export.ops_report on a tiny converted model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from export import bench, ops_report

pytestmark = pytest.mark.slow

# Shaped like benchmark_model's real stdout (recent binaries print p5/median/p95 and a peak line).
ANDROID_LOG = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/skinlesion_bench/model_int8.tflite]
INFO: #threads used for CPU inference: [4]
INFO: Use xnnpack: [1]
INFO: Loaded model /data/local/tmp/skinlesion_bench/model_int8.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: XNNPACK delegate created.
INFO: Explicitly applied XNNPACK delegate, and the model graph will be completely executed by the \
delegate.
INFO: The input model file size (MB): 4.71203
INFO: Initialized session in 61.412ms.
INFO: Running benchmark for at least 5 iterations and at least 0.5 seconds but terminate if \
exceeding 150 seconds.
INFO: count=41 first=25311 curr=11987 min=11730 max=25311 avg=12207.6 std=2087 p5=11746 \
median=11907 p95=12655

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if \
exceeding 150 seconds.
INFO: count=84 first=11902 curr=11871 min=11702 max=13890 avg=1.19221e+04 std=312 p5=11721 \
median=11843 p95=12560

INFO: Inference timings in us: Init: 61412, First inference: 25311, Warmup (avg): 12207.6, \
Inference (avg): 11922.1
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only \
APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your \
discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=11.8867 overall=19.5195
INFO: Overall peak memory footprint (MB) via periodic monitoring: 24.3789
INFO: Memory status at the end of exeution:
INFO: - VmRSS              : 41 MB
"""

# An older binary: no percentiles, "Peak memory footprint" wording.
OLD_ANDROID_LOG = """\
count=50 first=249042 curr=250889 min=247067 max=254474 avg=249684 std=1442
Inference timings in us: Init: 16242, First inference: 360262, Warmup (avg): 304586, \
Inference (avg): 249684
Peak memory footprint (MB): init=4.92969 overall=138.809
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A float32 and a uint8-in/out int8 classifier of 32x32 raw pixels, written to files."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(7, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(0)
    directory = tmp_path_factory.mktemp("models")
    paths = {}
    for kind in ("float32", "uint8"):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if kind == "uint8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: (
                [rng.uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)] for _ in range(8)
            )
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
        paths[kind] = directory / f"tiny_{kind}.tflite"
        paths[kind].write_bytes(converter.convert())
    return paths


# ----------------------------------------------------------------------------- bench


def test_benchmark_rows(models):
    paths = {path.name: path for path in (models["float32"], models["uint8"])}
    config = bench.BenchConfig(threads=(1, 2), runs=6, warmup=2, block=4)
    rows = bench.benchmark(list(paths.values()), config)
    assert [(r.threads, r.backend, r.model) for r in rows] == [
        (t, b, m) for t in (1, 2) for b in bench.LOCAL_BACKENDS for m in paths
    ]
    for row in rows:
        assert row.runs == 6 and row.init_ms > 0 and row.first_ms > 0 and row.warmup_avg_ms > 0
        assert 0 < row.p50_ms <= row.p90_ms <= row.p99_ms
        assert row.images_per_s == pytest.approx(1e3 / row.avg_ms)
        assert row.size_mb == pytest.approx(paths[row.model].stat().st_size / 1e6)
        assert row.peak_mem_mb is not None and row.peak_mem_mb > 0


def test_cli_writes_markdown_and_json(models, tmp_path, capsys):
    args = [str(models["uint8"]), "--threads", "1", "--runs", "3", "--warmup", "0"]
    assert bench.main([*args, "--backends", "xnnpack", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["config"]["runs"] == 3 and len(report["rows"]) == 1
    assert report["rows"][0]["warmup_avg_ms"] is None  # no warm-up asked: n/a, not NaN
    table = (tmp_path / "bench.md").read_text()
    assert "| tiny_uint8.tflite |" in table and "p99 ms" in table
    assert "tiny_uint8.tflite" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.tflite"], "no such model file"),
        ([__file__], "not a TFLite model"),
        (["{model}", "--threads", "1,x"], "expected a list such as 1,2,4"),
        (["{model}", "--threads", "0,2"], ">= 1"),
        (["{model}", "--threads", "2,2"], "unique"),
        (["{model}", "--runs", "0"], ">= 1"),
        (["{model}", "--backends", "gpu"], "backends"),
        ([], "at least one"),
    ],
)
def test_cli_usage_errors(models, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        bench.main([a.format(model=models["float32"]) for a in args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_android_script(models, tmp_path):
    argv = [str(models["float32"]), str(models["uint8"]), "--threads", "1,4", "--runs", "20"]
    assert bench.main([*argv, "--android", "--out", str(tmp_path)]) == 0
    script = tmp_path / "run_android_benchmark.sh"
    text = script.read_text()
    assert script.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(script)], check=True)  # syntax only; no adb here
    assert f"adb push {models['uint8'].resolve()}" in text and "RUNS=20" in text
    for backend, flag in bench.ANDROID_BACKENDS.items():
        assert f"run tiny_uint8.tflite 4 {backend} {flag}\n" in text
    assert text.count("\nrun tiny_") == 2 * 2 * len(bench.ANDROID_BACKENDS)


def test_parse_benchmark_model_output():
    row = bench.parse_benchmark_model_output(ANDROID_LOG, "model_int8.tflite", "xnnpack", 4)
    assert row.init_ms == pytest.approx(61.412) and row.first_ms == pytest.approx(25.311)
    assert row.warmup_avg_ms == pytest.approx(12.2076) and row.avg_ms == pytest.approx(11.9221)
    assert row.runs == 84 and row.p50_ms == pytest.approx(11.843)  # the measured block, not warm-up
    assert row.p90_ms is None and row.p99_ms is None
    assert row.images_per_s == pytest.approx(1e6 / 11922.1)
    assert row.size_mb == pytest.approx(4.71203) and row.peak_mem_mb == pytest.approx(24.3789)

    old = bench.parse_benchmark_model_output(OLD_ANDROID_LOG, "m.tflite", "cpu", 4)
    assert old.avg_ms == pytest.approx(249.684) and old.p50_ms is None and old.size_mb is None
    assert old.peak_mem_mb == pytest.approx(138.809) and old.runs == 50

    with pytest.raises(ValueError, match="Inference timings"):
        bench.parse_benchmark_model_output("ERROR: Could not open model", "m", "gpu", 1)


def test_android_logs_become_the_same_table(tmp_path, capsys):
    logs = tmp_path / "android_logs"
    logs.mkdir()
    (logs / "model_int8.tflite__xnnpack__t4.log").write_text(ANDROID_LOG)
    assert bench.main(["--android-logs", str(logs), "--out", str(tmp_path / "out")]) == 0
    (row,) = json.loads((tmp_path / "out" / "bench.json").read_text())["rows"]
    assert (row["model"], row["backend"], row["threads"]) == ("model_int8.tflite", "xnnpack", 4)
    assert "| model_int8.tflite | 4.71 | xnnpack | 4 |" in capsys.readouterr().out


# ----------------------------------------------------------------------------- ops_report


def test_ops_of_the_int8_model(models):
    report = ops_report.analyse(models["uint8"].read_bytes())
    ops = {op.name: op for op in report.ops}
    assert {"CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE"} <= set(ops)
    assert ops["QUANTIZE"].count == 2  # uint8 in -> int8, int8 -> uint8 out
    assert ops["CONV_2D"].input_dtypes == ("int32", "int8")  # int32 bias
    assert ops["CONV_2D"].gpu.startswith("likely")  # quantized version of a documented op
    assert ops["QUANTIZE"].gpu == "unsure" and ops["MEAN"].nnapi == "yes (API 28+)"
    assert report.tensor_dtypes["uint8"] == 2


def test_ops_of_the_float_model(models):
    ops = {op.name: op for op in ops_report.analyse(models["float32"].read_bytes()).ops}
    assert ops["CONV_2D"].gpu == "yes" and ops["CONV_2D"].versions == (1,)
    assert ops["SOFTMAX"].output_dtypes == ("float32",)
    assert ops["FULLY_CONNECTED"].nnapi == "yes (API 27+)"


def test_ops_report_cli(models, capsys):
    assert ops_report.main([str(models["float32"])]) == 0
    text = capsys.readouterr().out
    assert "| CONV_2D | 1 | 1 | float32 | float32 | yes | yes (API 27+) |" in text
    assert "deprecated from Android 15" in text
    assert ops_report.main([str(models["uint8"]), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["model"] == "tiny_uint8.tflite" and payload["notes"] == list(ops_report.NOTES)


def test_ops_report_rejects_non_models(tmp_path, capsys):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a TFLite model"):
        ops_report.analyse(junk.read_bytes())
    with pytest.raises(SystemExit):
        ops_report.main([str(junk)])
    assert "not a TFLite model" in capsys.readouterr().err
