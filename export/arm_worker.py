"""Run model files over image files on the machine this Python runs on: x86, or an ARM core.

    python -m export.arm_worker JOB.json OUT.npz

`python -m export.arm` runs this one script natively and under qemu-aarch64 (one process per
emulated core) and compares what they write. It imports only `contract` (numpy, Pillow and
LiteRT; no TensorFlow), so both sides decode with `contract.images.model_input` and feed the
model with `contract.tensors.invoke`, as the demo server does: a difference between them is the
machine's, not the code's. The job (JSON) names the files and images; the result holds each
file's dequantized outputs, each decoded image's digest, and what it ran on.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

from contract.images import model_input
from contract.interpreter import predict_tflite
from contract.tensors import TensorSpec

RUNTIME_PACKAGES = ("ai-edge-litert", "numpy", "pillow")


@dataclass(frozen=True)
class Job:
    """What to run: model files over images, with this many interpreter threads."""

    files: tuple[str, ...]
    images: tuple[str, ...]
    threads: int = 1

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> Job:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(tuple(data["files"]), tuple(data["images"]), int(data["threads"]))


def output_key(index: int) -> str:
    return f"outputs_{index}"


def digest_key(index: int) -> str:
    return f"pixels_sha256_{index}"


def runtime_info() -> dict:
    """The machine, core and package versions that produced the outputs."""
    cpu: dict[str, object] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key in ("model name", "CPU implementer", "CPU part") and key not in cpu:
                cpu[key] = value
            elif key in ("Features", "flags") and "features" not in cpu:
                cpu["features"] = value.split()
    except OSError:
        pass
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in RUNTIME_PACKAGES},
        "cpu": cpu,
    }


def _input_shape(model: str) -> tuple[int, int]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=model)
    shape = TensorSpec.from_detail(interpreter.get_input_details()[0]).shape
    return shape[1], shape[2]


def run_job(job: Job) -> dict[str, np.ndarray]:
    """Each file's outputs (float64, images x outputs) and its decoded inputs' digests."""
    arrays: dict[str, np.ndarray] = {}
    decoded: dict[tuple[int, int], np.ndarray] = {}
    for index, model in enumerate(job.files):
        size = _input_shape(model)
        if size not in decoded:
            decoded[size] = np.stack([model_input(image, *size) for image in job.images])
        digests = [hashlib.sha256(p.tobytes()).hexdigest() for p in decoded[size]]
        arrays[digest_key(index)] = np.array(digests)
        print(f"{platform.machine()}: {model} on {len(job.images)} images", file=sys.stderr)
        arrays[output_key(index)] = predict_tflite(model, decoded[size], threads=job.threads)
    arrays["runtime"] = np.array(json.dumps(runtime_info()))
    return arrays


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m export.arm_worker JOB.json OUT.npz", file=sys.stderr)
        return 2
    np.savez(args[1], **run_job(Job.read(Path(args[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
