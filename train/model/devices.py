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

Several hosts (JAX only): one process per host joins the others (`join`, which calls
`keras.distribution.initialize`) before anything computes; the mesh is then the chosen devices
of every process (`devices` counts each host's), and each process feeds its own slice of every
global batch (`train.data.pipeline.TrainingBatches`, `part`). A step is still one program over
all the devices, so it gives what one device gives.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from contract.commands import CommandError

# Keras's own variables for keras.distribution.initialize, read when a flag is not given.
ENV_COORDINATOR = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
ENV_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"


class DeviceError(CommandError, ValueError):
    """The devices asked for are not there, or the backend cannot share a batch between them."""


@dataclass
class Placement:
    backend: str
    devices: list[str]
    _scope: object = field(default=None, repr=False)  # a context manager factory
    processes: int = 1  # the processes (hosts) whose devices these are
    process_id: int = 0  # which of them this one is

    @property
    def replicas(self) -> int:
        return len(self.devices)

    @property
    def part(self) -> tuple[int, int]:
        """(this process, processes): which slice of each batch this process feeds."""
        return self.process_id, self.processes

    def scope(self):
        """The context to build, compile, fit, predict and save the model in."""
        return self._scope() if self._scope is not None else contextlib.nullcontext()

    def describe(self) -> str:
        how = "data parallel" if self.replicas > 1 else "one device"
        hosts = f" ({self.processes} processes, this is {self.process_id})"
        return f"{self.backend} backend, {how}: {', '.join(self.devices)}" + (
            hosts if self.processes > 1 else ""
        )


@dataclass(frozen=True)
class Cluster:
    """The processes, one per host, that train one model together (JAX): process 0's address
    (`HOST:PORT`, where it serves the others), how many there are, and which one this is."""

    coordinator: str | None = None
    processes: int = 1
    process_id: int = 0


def cluster(
    coordinator: str | None = None,
    processes: int | None = None,
    process_id: int | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Cluster:
    """The cluster from the flags, each one not given read from Keras's variables (ENV_*);
    with neither, one process (the single-host path)."""
    try:
        coordinator = coordinator or environ.get(ENV_COORDINATOR) or None
        if processes is None:
            processes = int(environ.get(ENV_PROCESSES, "1"))
        if process_id is None:
            process_id = int(environ.get(ENV_PROCESS_ID, "0"))
    except ValueError as error:
        raise DeviceError(
            f"{ENV_PROCESSES} and {ENV_PROCESS_ID} must be integers: {error}"
        ) from None
    if processes < 1:
        raise DeviceError(f"--processes must be at least 1, got {processes}")
    if not 0 <= process_id < processes:
        raise DeviceError(f"--process-id must be 0 to {processes - 1}, got {process_id}")
    if processes > 1 and not coordinator:
        raise DeviceError(
            f"{processes} processes need --coordinator HOST:PORT (process 0's address; "
            f"or {ENV_COORDINATOR})"
        )
    return Cluster(coordinator, processes, process_id)


def join(cluster: Cluster) -> None:
    """Connect this process to the cluster's others (`keras.distribution.initialize`): before
    anything computes. Returns when all have joined; JAX gives up after 5 minutes. Nothing to
    do for one process."""
    if cluster.processes == 1:
        return
    import keras

    if keras.backend.backend() != "jax":
        raise DeviceError(
            f"several processes need the jax backend (KERAS_BACKEND=jax), not "
            f"{keras.backend.backend()}"
        )
    import jax

    # CPU devices exchange gradients over gloo (JAX's CPU default is none across processes);
    # GPUs use NCCL, TPUs their interconnect, whatever this says.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(cluster.coordinator, cluster.processes, cluster.process_id)


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
        import jax

        if jax.process_count() > 1:
            return _across_processes(devices)
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


def _across_processes(devices: int) -> Placement:
    """JAX after `join`: the first `devices` (0: all) of every process's devices. Each process
    feeds its slice of the batch, so every one needs as many devices."""
    import jax
    import keras

    named = [f"{d.platform}:{d.id}" for d in jax.devices()]  # keras.distribution's names
    owners = [d.process_index for d in jax.devices()]
    chosen = [
        _pick([n for n, o in zip(named, owners, strict=True) if o == process], devices, "jax")
        for process in range(jax.process_count())
    ]
    if len({len(c) for c in chosen}) > 1:
        counts = ", ".join(str(len(c)) for c in chosen)
        raise DeviceError(f"the processes have {counts} devices; give --devices N (each's)")
    flat = [name for names in chosen for name in names]
    # Not auto-sharded: TrainingBatches hands each process its own slice already.
    distribution = keras.distribution.DataParallel(devices=flat, auto_shard_dataset=False)
    return Placement("jax", flat, distribution.scope, jax.process_count(), jax.process_index())


def processes() -> int:
    """How many processes (hosts) compute together: 1 unless `join`ed on JAX."""
    import keras

    if keras.backend.backend() != "jax":
        return 1
    import jax

    return jax.process_count()


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
