"""Training on any Keras backend (docs/backends.md): the on-device augmentation, weights that
mean the same on TensorFlow and JAX, data parallel on several JAX devices, and a JAX training
run, without TensorFlow, whose weights TensorFlow exports.

The test process runs the TensorFlow backend; anything on another backend runs in a
subprocess, because KERAS_BACKEND must be set before keras is first imported.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Put first in a subprocess: any import of TensorFlow fails, as on a machine without it.
BLOCK_TENSORFLOW = """
import importlib.abc, sys
class _NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] == "tensorflow":
            raise ImportError("no TensorFlow here: this run must not need it")
sys.meta_path.insert(0, _NoTensorFlow())
"""


def backend_env(backend: str, host_devices: int = 1) -> dict[str, str]:
    """The environment of a fresh Python on `backend` with `host_devices` CPU devices."""
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    if host_devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={host_devices}"
    return env


def run_backend(
    code: str, backend: str, host_devices: int = 1, block_tensorflow: bool = False
) -> str:
    """Run `code` in a fresh Python on `backend`; its stdout. Fails with its stderr's tail."""
    prelude = BLOCK_TENSORFLOW if block_tensorflow else ""
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=ROOT,
        env=backend_env(backend, host_devices),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{backend} subprocess failed:\n{result.stderr[-4000:]}"
    return result.stdout


# --------------------------------------------------------------------------------------------
# The augmentation (keras.ops), checked on the test process's backend.
# --------------------------------------------------------------------------------------------


def _dihedral_images(image: np.ndarray) -> list[np.ndarray]:
    turns = [np.rot90(image, k) for k in range(4)]
    return turns + [np.fliplr(t) for t in turns]


def _view(images, origin=0.0, extent=1.0, flip_y=0, flip_x=0, transpose=0, blur=0):
    """`train.data.augment.resample` with the same crop on both axes, given per image."""
    from train.data.augment import axis_weights, resample

    n, size = len(images), images.shape[1]

    def column(value, dtype="float32"):
        return np.broadcast_to(np.asarray(value, dtype), (n,))

    blur = column(blur, "int32")
    rows = axis_weights(column(origin), column(extent), column(flip_y), blur, size)
    columns = axis_weights(column(origin), column(extent), column(flip_x), blur, size)
    return np.asarray(resample(images, rows, columns, column(transpose)))


def test_a_whole_image_view_is_an_exact_turn_or_mirror_image_and_all_eight_occur():
    size = 9
    image = np.random.default_rng(0).uniform(0, 255, (size, size, 3)).astype(np.float32)
    flags = np.array([(fy, fx, t) for fy in (0, 1) for fx in (0, 1) for t in (0, 1)])
    views = _view(np.stack([image] * 8), 0.0, 1.0, *flags.T)
    candidates = _dihedral_images(image)
    seen = set()
    for view in views:
        matches = [i for i, c in enumerate(candidates) if np.allclose(view, c, atol=1e-3)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == set(range(8))


def test_a_crop_is_stretched_back_to_the_full_size():
    """The box from 1/4 to 3/4 of a ramp image: the output spans exactly the box's values
    (bilinear interpolation of a ramp is exact)."""
    size = 33
    ramp = np.broadcast_to(np.arange(size, dtype=np.float32)[None, :, None], (size, size, 3))
    out = _view(np.stack([ramp, ramp.transpose(1, 0, 2)]), 0.25, 0.5)
    np.testing.assert_allclose(out[0, 0, :, 0], np.linspace(8, 24, size), atol=1e-3)
    np.testing.assert_allclose(out[1, :, 0, 0], np.linspace(8, 24, size), atol=1e-3)


@pytest.mark.parametrize(("blur", "width"), [(1, 3), (2, 5)])
def test_the_blur_is_an_average_pool_over_the_pixels_inside(blur: int, width: int):
    from keras import ops

    image = np.random.default_rng(1).uniform(0, 255, (1, 12, 12, 3)).astype(np.float32)
    expected = np.asarray(ops.average_pool(image, width, strides=1, padding="same"))
    np.testing.assert_allclose(_view(image, blur=blur), expected, atol=1e-3)


def test_augment_layer_views_images_in_training_and_casts_otherwise():
    from train.data.augment import Augment

    pixels = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    layer = Augment(True, seed=1)
    np.testing.assert_array_equal(np.asarray(layer(pixels, training=False)), pixels)
    first = np.asarray(layer(pixels, training=True))
    second = np.asarray(layer(pixels, training=True))
    assert first.dtype == np.float32 and first.shape == pixels.shape
    assert 0.0 <= first.min() and first.max() <= 255.0
    assert not np.allclose(first, pixels) and not np.allclose(first, second)
    off = Augment(False, seed=1)
    np.testing.assert_array_equal(np.asarray(off(pixels, training=True)), pixels)


# --------------------------------------------------------------------------------------------
# Across backends and devices (subprocesses).
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_same_weights_give_the_same_outputs_on_tensorflow_and_jax(tmp_path: Path):
    """An EfficientNet-Lite0 classifier saved on TensorFlow (model.keras, and a checkpoint
    loaded into a model built afresh) predicts the same on JAX."""
    import keras

    from train.model.backbones import get_spec
    from train.model.network import build_classifier
    from train.model.predict import predict_keras

    keras.utils.set_random_seed(0)
    model = build_classifier(get_spec("efficientnet_lite0"), 96, 0.2)
    model.save(tmp_path / "model.keras")
    model.save_weights(tmp_path / "last.weights.h5")
    pixels = np.random.default_rng(0).integers(0, 256, (5, 96, 96, 3), dtype=np.uint8)
    np.save(tmp_path / "pixels.npy", pixels)
    expected = predict_keras(model, pixels)
    run_backend(
        f"""
        from pathlib import Path
        import keras, numpy as np
        from train.model.predict import predict_keras
        from train.model.backbones import get_spec
        from train.model.network import build_classifier
        out = Path({str(tmp_path)!r})
        pixels = np.load(out / "pixels.npy")
        loaded = keras.models.load_model(out / "model.keras")
        np.save(out / "saved.npy", predict_keras(loaded, pixels))
        fresh = build_classifier(get_spec("efficientnet_lite0"), 96, 0.2)
        fresh.load_weights(out / "last.weights.h5")
        np.save(out / "checkpoint.npy", predict_keras(fresh, pixels))
        """,
        "jax",
        block_tensorflow=True,
    )
    for name in ("saved", "checkpoint"):
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), expected, atol=1e-5)


# Two steps of AdamW on 16 images (augmented, dropout, batch norm, loss weights) from a fixed
# start, on `placement(devices)`: (devices, the weights after, their predictions).
TWO_STEPS = """
import jax, keras, numpy as np
from train.data.pipeline import TrainingBatches, one_hot
from train.model.predict import predict_keras
from train.model.backbones import get_spec
from train.model.devices import placement
from train.model.network import build_classifier, training_model

rng = np.random.default_rng(0)
pixels = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
labels = rng.integers(0, 7, 16)
weights = rng.uniform(0.5, 2.0, 16).astype(np.float32)

def train(devices):
    keras.utils.set_random_seed(0)
    where = placement(devices)
    with where.scope():
        model = build_classifier(get_spec("tiny_cnn"), 32, 0.2)
        trainer = training_model(model, True, 0)
        trainer.compile(optimizer=keras.optimizers.AdamW(1e-2),
                        loss=keras.losses.CategoricalCrossentropy(),
                        weighted_metrics=["accuracy"])
        data = TrainingBatches(pixels, one_hot(labels), weights, 8, True, 0,
                               multiple_of=where.replicas, part=where.part)
        trainer.fit(data, epochs=1, verbose=0)
        return where.replicas, model.get_weights(), predict_keras(model, pixels)
"""


@pytest.mark.slow
def test_a_data_parallel_step_on_two_jax_devices_equals_one_device():
    """Same global batch, same start: two steps give the same weights on two (host) devices as
    on one."""
    out = run_backend(
        TWO_STEPS
        + """
assert len(jax.devices()) == 2, jax.devices()
(n1, one, p1), (n2, two, p2) = train(1), train(0)
start = build_classifier(get_spec("tiny_cnn"), 32, 0.2).get_weights()
moved = max(float(np.abs(a - b).max()) for a, b in zip(one, start))
diff = max(float(np.abs(a - b).max()) for a, b in zip(one, two))
print(n1, n2, moved, diff, float(np.abs(p1 - p2).max()))
""",
        "jax",
        host_devices=2,
    )
    n1, n2, moved, diff, probs = out.split()[-5:]
    assert (int(n1), int(n2)) == (1, 2)
    assert float(moved) > 1e-3  # the steps changed the weights ...
    assert float(diff) < 1e-4 and float(probs) < 1e-4  # ... alike on one and on two devices


def test_the_cluster_comes_from_the_flags_else_keras_variables_else_one_process():
    from train.model.devices import (
        ENV_COORDINATOR,
        ENV_PROCESS_ID,
        ENV_PROCESSES,
        Cluster,
        DeviceError,
        cluster,
        join,
    )

    env = {ENV_COORDINATOR: "10.0.0.1:1234", ENV_PROCESSES: "2", ENV_PROCESS_ID: "1"}
    assert cluster(environ={}) == Cluster(None, 1, 0)
    assert cluster(environ=env) == Cluster("10.0.0.1:1234", 2, 1)
    assert cluster("h:1", 4, 3, environ=env) == Cluster("h:1", 4, 3)
    refused = [
        ((None, 2, 0), "--coordinator HOST:PORT"),
        (("h:1", 2, 2), "0 to 1"),
        (("h:1", 0, 0), "at least 1"),
    ]
    for flags, message in refused:
        with pytest.raises(DeviceError, match=message):
            cluster(*flags, environ={})
    with pytest.raises(DeviceError, match="must be integers"):
        cluster(environ={ENV_PROCESSES: "two"})
    join(Cluster())  # one process: nothing to join
    with pytest.raises(DeviceError, match="need the jax backend"):  # this process: TensorFlow
        join(Cluster("127.0.0.1:1", 2, 0))


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_together(codes: list[str], port: int, logs: Path, timeout: float = 600) -> None:
    """Run each code in its own fresh Python on JAX, all at once: processes that meet at the
    coordinator 127.0.0.1:`port` (bound there, not on every interface as by default). Fails,
    killing the others, as soon as one fails or when `timeout` is up."""
    env = {**backend_env("jax"), "JAX_COORDINATOR_BIND_ADDRESS": f"127.0.0.1:{port}"}
    logs.mkdir(parents=True, exist_ok=True)
    running = []
    try:
        for i, code in enumerate(codes):
            with open(logs / f"process{i}.log", "w") as log:
                command = [sys.executable, "-c", textwrap.dedent(code)]
                running.append(
                    subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
                )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = [process.poll() for process in running]
            if None not in status or any(code not in (None, 0) for code in status):
                break
            time.sleep(0.5)
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
            process.wait()
    for i, process in enumerate(running):
        tail = (logs / f"process{i}.log").read_text()[-4000:]
        assert process.returncode == 0, f"process {i} failed ({process.returncode}):\n{tail}"


@pytest.mark.slow
def test_a_data_parallel_step_over_two_jax_processes_equals_one_device(tmp_path: Path):
    """Several hosts, as two processes on loopback (one CPU device each, gloo between them,
    joined by `train.model.devices.join`): each feeds its half of every batch, and the two
    steps give the weights and predictions of one device."""
    port = free_port()
    workers = [
        TWO_STEPS
        + f"""
from train.model.devices import Cluster, join
join(Cluster("127.0.0.1:{port}", 2, {i}))
n, after, probs = train(0)
np.savez({str(tmp_path / f"process{i}.npz")!r}, n=n, probs=probs, *after)
"""
        for i in range(2)
    ]
    run_together(workers, port, tmp_path / "logs")
    run_backend(
        TWO_STEPS
        + f"""
n, after, probs = train(1)
np.savez({str(tmp_path / "one.npz")!r}, n=n, probs=probs, *after)
""",
        "jax",
    )
    one = np.load(tmp_path / "one.npz")
    weights = sorted(k for k in one.files if k.startswith("arr_"))
    for i in range(2):
        two = np.load(tmp_path / f"process{i}.npz")
        assert (int(one["n"]), int(two["n"])) == (1, 2)
        assert sorted(k for k in two.files if k.startswith("arr_")) == weights
        diff = max(float(np.abs(one[k] - two[k]).max()) for k in weights)
        assert diff < 1e-4, f"process {i}: weights differ by {diff}"
        np.testing.assert_allclose(two["probs"], one["probs"], atol=1e-4)


@pytest.mark.slow
@pytest.mark.data
def test_python_m_train_over_two_processes_trains_what_one_host_does(
    data_dir: Path, tmp_path: Path
):
    """The command of docs/backends.md on two processes (loopback): each writes its run folder,
    the same model as the other's, and as one process's on two devices (the same batches)."""
    data = f"{data_dir / 'ham10000'},{data_dir / 'pad_ufes20'}"
    argv = ["--data", data, "--backbone", "tiny_cnn", "--epochs", "1", "--image-size", "48",
            "--batch-size", "16", "--max-images-per-class", "8"]
    port = free_port()
    several = ["--coordinator", f"127.0.0.1:{port}", "--processes", "2"]
    commands = [
        [*argv, *several, "--process-id", str(i), "--out", str(tmp_path / f"p{i}")]
        for i in range(2)
    ]
    run_together(
        [f"import sys\nfrom train.__main__ import main\nsys.exit(main({c!r}))" for c in commands],
        port,
        tmp_path / "logs",
    )
    out = run_backend(
        f"""
        import keras, numpy as np
        from train.__main__ import main
        assert main({[*argv, "--out", str(tmp_path / "one")]!r}) == 0
        models = [keras.models.load_model({str(tmp_path)!r} + f"/{{n}}/model.keras")
                  for n in ("one", "p0", "p1")]
        one, p0, p1 = (m.get_weights() for m in models)
        print(max(float(np.abs(a - b).max()) for a, b in zip(one, p0)),
              max(float(np.abs(a - b).max()) for a, b in zip(p0, p1)))
        """,
        "jax",
        host_devices=2,
    )
    to_one, between = (float(x) for x in out.split()[-2:])
    assert between == 0.0 and to_one < 1e-4
    for i in range(2):
        card = json.loads((tmp_path / f"p{i}" / "model_card.json").read_text())
        assert card["training"]["devices"] == ["cpu:0", "cpu:2048"]
    log = (tmp_path / "logs" / "process1.log").read_text()
    assert "data parallel: cpu:0, cpu:2048 (2 processes, this is 1)" in log


@pytest.mark.slow
def test_tensorflow_data_parallel_trains_on_two_logical_devices():
    """The TensorFlow path (MirroredStrategy, as on several GPUs) on two logical CPU devices:
    the training model, its on-device augmentation and the PyDataset run there. Its batch
    normalisation is per device, so the weights are not compared with one device's."""
    out = run_backend(
        """
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        two = [tf.config.LogicalDeviceConfiguration()] * 2
        tf.config.set_logical_device_configuration(cpu, two)
        import keras, numpy as np
        from train.data.pipeline import TrainingBatches, one_hot
        from train.model.predict import predict_keras
        from train.model.backbones import get_spec
        from train.model.devices import placement
        from train.model.network import build_classifier, training_model

        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, (18, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 7, 18)
        keras.utils.set_random_seed(0)
        where = placement(0)
        with where.scope():
            model = build_classifier(get_spec("tiny_cnn"), 32, 0.2)
            start = model.get_weights()
            trainer = training_model(model, True, 0)
            trainer.compile(optimizer=keras.optimizers.AdamW(1e-2),
                            loss=keras.losses.CategoricalCrossentropy())
            data = TrainingBatches(pixels, one_hot(labels), np.ones(18, np.float32), 8, True, 0,
                                    multiple_of=where.replicas)
            trainer.fit(data, epochs=2, verbose=0)
            probs = predict_keras(model, pixels)
        moved = max(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(), start))
        print(where.replicas, len(data), moved, bool(np.isfinite(probs).all()), probs.shape[0])
        """,
        "tensorflow",
    )
    replicas, batches, moved, finite, rows = out.split()[-5:]
    assert (replicas, batches, finite, rows) == ("2", "3", "True", "18")  # 8 + 8 + 2 images
    assert float(moved) > 1e-3


@pytest.mark.slow
@pytest.mark.data
def test_jax_trains_and_resumes_without_tensorflow_and_tensorflow_exports_it(
    data_dir: Path, tmp_path: Path
):
    """CI's JAX training run: `python -m train` on JAX, TensorFlow blocked, an epoch, resumed
    for a second (with EMA weights swapped in); then this (TensorFlow) process loads model.keras
    and exports it, and the .tflite gives JAX's probabilities."""
    import keras

    from contract.interpreter import predict_tflite
    from export.exporting import ExportSettings, export_model

    run = tmp_path / "jax_run"
    pixels = np.random.default_rng(2).integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
    np.save(tmp_path / "pixels.npy", pixels)
    data = f"{data_dir / 'ham10000'},{data_dir / 'pad_ufes20'}"
    out = run_backend(
        f"""
        import json, sys
        from pathlib import Path
        import keras, numpy as np
        from train.__main__ import main
        from train.model.predict import predict_keras
        run = Path({str(run)!r})
        argv = ["--data", {data!r}, "--out", str(run), "--backbone", "tiny_cnn", "--epochs", "1",
                "--image-size", "48", "--batch-size", "16", "--max-images-per-class", "8",
                "--ema-momentum", "0.9"]
        assert main(argv) == 0
        hparams = json.loads((run / "hparams.json").read_text())
        (run / "hparams.json").write_text(json.dumps({{**hparams, "epochs": 2}}))
        assert main(["--out", str(run), "--resume"]) == 0
        pixels = np.load(run.parent / "pixels.npy")
        model = keras.models.load_model(run / "model.keras")
        np.save(run.parent / "jax_probs.npy", predict_keras(model, pixels))
        print("tensorflow imported:", "tensorflow" in sys.modules)
        """,
        "jax",
        block_tensorflow=True,
    )
    assert "training on the jax backend" in out and "resuming after epoch 1" in out
    assert "tensorflow imported: False" in out
    assert json.loads((run / "checkpoints/state.json").read_text())["epoch"] == 2
    card = json.loads((run / "model_card.json").read_text())
    assert card["training"]["backend"] == "jax" and card["training"]["epochs"] == 2

    jax_probs = np.load(tmp_path / "jax_probs.npy")
    model = keras.models.load_model(run / "model.keras")
    np.testing.assert_allclose(
        model.predict(pixels.astype(np.float32), verbose=0), jax_probs, atol=1e-5
    )
    settings = ExportSettings(variants=("float32",), max_loss_points=100)
    assert not export_model(run, tmp_path / "export", settings)
    tflite = predict_tflite(tmp_path / "export" / "skin_lesion_float32.tflite", pixels)
    np.testing.assert_allclose(tflite, jax_probs, atol=1e-4)
