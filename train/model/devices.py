"""Which devices a run trains on: one, or data parallel over several, on any Keras backend.

The backend is Keras's (`KERAS_BACKEND`, set before keras is first imported). Data parallel
keeps one copy of the weights on each device and splits every batch between them:

- JAX: `keras.distribution.DataParallel` over `keras.distribution.list_devices()` (the GPUs or
  TPUs, else the CPU devices; `XLA_FLAGS=--xla_force_host_platform_device_count=N` makes N of
  these on one CPU, which is how the tests check it). Batch statistics and gradients are those
  of the whole (global) batch, so a step is the same as on one device.
- TensorFlow: `tf.distribute.MirroredStrategy` over the GPUs (else the logical CPU devices, one
  unless configured), as before the other backends. Unlike JAX's, its batch normalisation keeps
  statistics per device, so a step differs a little from one device's.
- PyTorch: one device only.

`devices=0` uses every device the backend offers; n uses the first n.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field


class DeviceError(ValueError):
    """The devices asked for are not there, or the backend cannot share a batch between them."""


@dataclass
class Placement:
    backend: str
    devices: list[str]
    _scope: object = field(default=None, repr=False)  # a context manager factory

    @property
    def replicas(self) -> int:
        return len(self.devices)

    def scope(self):
        """The context to build, compile, fit, predict and save the model in."""
        return self._scope() if self._scope is not None else contextlib.nullcontext()

    def describe(self) -> str:
        how = "data parallel" if self.replicas > 1 else "one device"
        return f"{self.backend} backend, {how}: {', '.join(self.devices)}"


def _pick(available: list[str], devices: int, backend: str) -> list[str]:
    if devices < 0:
        raise DeviceError(f"--devices must be at least 0, got {devices}")
    if devices > len(available):
        raise DeviceError(
            f"--devices {devices}: the {backend} backend sees {len(available)} "
            f"({', '.join(available)})"
        )
    return available[:devices] if devices else available


def placement(devices: int = 0) -> Placement:
    """Where to train: every device of the backend (0) or the first `devices` of them."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        available = keras.distribution.list_devices()
        chosen = _pick(available, devices, backend)
        if len(chosen) == 1:
            return Placement(backend, chosen)
        distribution = keras.distribution.DataParallel(devices=chosen)
        return Placement(backend, chosen, distribution.scope)
    if backend == "tensorflow":
        import tensorflow as tf

        available = [d.name for d in tf.config.list_logical_devices("GPU")]
        available = available or [d.name for d in tf.config.list_logical_devices("CPU")]
        chosen = _pick(available, devices, backend)
        if len(chosen) == 1:
            return Placement(backend, chosen)
        strategy = tf.distribute.MirroredStrategy(chosen)
        return Placement(backend, chosen, strategy.scope)
    if devices > 1:
        raise DeviceError(f"data parallel needs the jax or tensorflow backend, not {backend}")
    return Placement(backend, [backend])


def replicas() -> int:
    """How many devices share each batch in the current scope (1 outside a distribution)."""
    import keras

    if keras.backend.backend() == "jax":
        distribution = keras.distribution.distribution()
        return 1 if distribution is None else int(distribution.device_mesh.devices.size)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return int(tf.distribute.get_strategy().num_replicas_in_sync)
    return 1
