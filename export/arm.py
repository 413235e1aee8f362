"""Run model files on emulated ARM cores, as phones run them, and compare every output with x86.

    python -m export.arm FILES... [--cpus cortex-a53,cortex-a76,max] [--val-images 80] [--out DIR]
    python -m export.arm --setup     # only build the emulated runtime (then it runs offline)

The cores: `cortex-a53` (no dot product: older and cheaper phones), `cortex-a76` (dot product),
`max` (QEMU's newest: i8mm, SVE); XNNPACK may pick other int8 kernels on each (the report says
which cores gave bit-identical outputs). The images
are the samples and `--val-images` val images of the shipped split, half of each kind of photo.
Every file runs on x86 and on each core through `export.arm_worker` (contract code only) and
`export.arm_compare` says how the outputs and decisions differ; the report
(`export.arm_report`) goes to --out (default: the files' folder), which `export.ship` ships.
Emulated time says nothing about a phone's latency and is not reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from contract.commands import CommandError, comma_list, reported
from contract.model_file import (
    GATE_FILE,
    MODEL_CARD_FILE,
    ModelFileError,
    check_tflite,
    read_associated_files,
    read_gate_info,
    read_metadata,
    read_model_file,
)
from contract.run_folder import SHIPPED_SPLIT_CSV, read_split
from contract.segmentation import SEGMENTER_FILE, read_segmenter_info
from contract.taxonomy import DOMAINS
from contract.tensors import TensorSpec
from export.arm_compare import (
    CoreComparison,
    Images,
    compare_classifier,
    compare_gate,
    compare_segmenter,
    differences,
)
from export.arm_outputs import CACHE, HOST, file_digests, load, outputs_key, store
from export.arm_report import ArmReport, FileResult, write_report
from export.arm_runtime import REPO, find_runtime, setup_runtime
from export.arm_worker import Job, digest_key, output_key
from export.ops_report import analyse
from export.ship import SHIPPED_MODELS

DEFAULT_CPUS = ("cortex-a53", "cortex-a76", "max")
SHIPPED_SPLIT = REPO / SHIPPED_SPLIT_CSV
SAMPLES = REPO / "sample_images"
DEFAULT_VAL_IMAGES = 80  # with the samples: the 4 shipped files on 3 cores, 14 min of CPU each


class ArmError(CommandError):
    """The comparison cannot run; the message says why."""

    status = 1  # a check the input failed, not a usage error


def sample_domain(path: Path) -> str | None:
    """The kind of photo a sample's name states (`<label>_<domain>_<id>.jpg`), else None."""
    parts = path.stem.split("_")
    return parts[1] if len(parts) > 1 and parts[1] in DOMAINS else None


def choose_images(
    samples: Path, split: Path, val_images: int, seed: int
) -> tuple[list[Path], Images, str]:
    """The samples, then `val_images` of the split's val images (an equal share per kind of
    photo, drawn with `seed`): paths, names and kinds, and a sentence saying so."""
    paths = sorted(p for p in samples.glob("*.jp*g"))
    domains: list[str | None] = [sample_domain(p) for p in paths]
    description = f"{len(paths)} sample images ({samples.name}/)"
    if val_images > 0:
        val = read_split(split)["val"]
        rng = np.random.default_rng(seed)
        counts: dict[str, int] = {}
        for i, domain in enumerate(DOMAINS):
            pool = [r for r in val if r.domain == domain]
            share = val_images // len(DOMAINS) + (i < val_images % len(DOMAINS))
            chosen = sorted(rng.choice(len(pool), size=min(share, len(pool)), replace=False))
            paths += [pool[k].path for k in chosen]
            domains += [domain] * len(chosen)
            counts[domain] = len(chosen)
        each = ", ".join(f"{n} {domain}" for domain, n in counts.items())
        description += (
            f" and {sum(counts.values())} val images of {split.name} ({each}; drawn with seed "
            f"{seed})"
        )
    missing = [p for p in paths if not (REPO / p).is_file()]
    if missing:
        raise ArmError(
            f"{len(missing)} image(s) not found, e.g. {missing[0]} (the split's "
            "images are in ../shared/data; --val-images 0 compares the samples only)"
        )
    names = tuple(p.name if p.parent == samples else str(p) for p in paths)
    return [(REPO / p).resolve() for p in paths], Images(names, tuple(domains)), description


def _run(command: list[str], env: dict[str, str] | None, log: Path) -> None:
    with log.open("w") as out:
        code = subprocess.run(command, cwd=REPO, env=env, stdout=out, stderr=out).returncode
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ArmError(f"{shlex.join(command[:4])} ... failed ({code}):\n{tail}")


def _run_missing(
    where: str,
    files: list[Path],
    job_images: tuple[str, ...],
    keys: list[str],
    cache: Path,
    scratch: Path,
) -> None:
    """Run the worker on `where` for the files whose outputs are not kept yet, and keep them."""
    missing = [i for i, key in enumerate(keys) if load(key, cache) is None]
    if not missing:
        return
    job_path, result = scratch / f"{where}.json", scratch / f"{where}.npz"
    Job(tuple(str(files[i].resolve()) for i in missing), job_images).write(job_path)
    worker = ["-m", "export.arm_worker", str(job_path), str(result)]
    if where == HOST:
        _run([sys.executable, *worker], None, scratch / f"{where}.log")
    else:
        runtime = find_runtime()
        _run(runtime.command(where, worker), runtime.environment(), scratch / f"{where}.log")
    arrays = np.load(result)
    for j, i in enumerate(missing):
        entry = {"outputs": arrays[output_key(j)], "pixels_sha256": arrays[digest_key(j)]}
        store(keys[i], {**entry, "runtime": arrays["runtime"]}, cache)


def run_everywhere(
    files: list[Path],
    images: list[Path],
    cpus: Sequence[str],
    jobs: int,
    cache: Path,
    scratch: Path,
) -> dict[str, list[dict[str, np.ndarray]]]:
    """Each file's outputs, pixel digests and runtime on x86 (this Python) and on each
    emulated core, by where; what `cache` keeps (`export.arm_outputs`) is not run again."""
    find_runtime()  # before an x86 run that would be wasted
    models = [read_model_file(p) for p in files]
    job_images, digests = tuple(map(str, images)), file_digests(images)
    keys = {w: [outputs_key(m, digests, w) for m in models] for w in (HOST, *cpus)}

    def run(where: str) -> None:
        _run_missing(where, files, job_images, keys[where], cache, scratch)

    run(HOST)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(run, cpus))
    return {where: [load(key, cache) for key in keys[where]] for where in keys}


def _comparer(model: bytes, path: Path) -> tuple[str, TensorSpec, Callable[..., CoreComparison]]:
    """The file's kind, output tensor, and the comparison for its kind."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    spec_in = TensorSpec.from_detail(interpreter.get_input_details()[0])
    spec_out = TensorSpec.from_detail(interpreter.get_output_details()[0])
    packed = read_associated_files(model)
    if MODEL_CARD_FILE in packed:
        meta = read_metadata(model, spec_in, spec_out, path.name)
        return "classifier", spec_out, lambda *a: compare_classifier(meta, *a)
    if GATE_FILE in packed:
        gate = read_gate_info(model)
        return "gate", spec_out, lambda *a: compare_gate(gate, *a)
    if SEGMENTER_FILE in packed:
        info = read_segmenter_info(model)
        return "segmenter", spec_out, lambda *a: compare_segmenter(info, *a)
    raise ArmError(f"{path}: neither a classifier, the gate nor the segmenter (no packed JSON)")


def compare_file(
    path: Path,
    index: int,
    images: Images,
    results: dict[str, list[dict[str, np.ndarray]]],
    out: Path,
) -> FileResult:
    """One file's comparison on every core (`results`: x86_64 first, then the cores)."""
    model = read_model_file(path)
    kind, spec, compare = _comparer(model, path)
    ours = results[HOST][index]
    cores = {}
    for cpu, entries in results.items():
        if cpu != HOST:
            theirs = entries[index]
            decoded = int(np.sum(theirs["pixels_sha256"] == ours["pixels_sha256"]))
            base = differences(ours["outputs"], theirs["outputs"], spec, decoded)
            cores[cpu] = compare(images, ours["outputs"], theirs["outputs"], base)
    for cpu, core in cores.items():
        core.same_outputs_as = [
            other
            for other in cores
            if other != cpu
            and np.array_equal(results[cpu][index]["outputs"], results[other][index]["outputs"])
        ]
    operators = [
        {"name": o.name, "count": o.count, "versions": list(o.versions)} for o in analyse(model).ops
    ]
    where = path.resolve()
    shown = where.relative_to(out.resolve()) if where.is_relative_to(out.resolve()) else path
    digest = hashlib.sha256(model).hexdigest()
    return FileResult(str(shown), digest, kind, spec.as_json(), operators, cores)


def _cpu_list(text: str) -> tuple[str, ...]:
    cpus = tuple(comma_list(text))
    if not cpus or any(not c.replace("-", "").isalnum() for c in cpus):
        raise argparse.ArgumentTypeError(f"expected QEMU -cpu names such as {DEFAULT_CPUS}")
    return cpus


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.arm", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "files", nargs="*", type=Path, help=".tflite files (classifiers, gate, segmenter)"
    )
    parser.add_argument(
        "--setup", action="store_true", help="build the emulated runtime (downloads once) and exit"
    )
    parser.add_argument(
        "--cpus",
        type=_cpu_list,
        default=DEFAULT_CPUS,
        help="comma-separated QEMU -cpu models (default: %(default)s)",
    )
    parser.add_argument(
        "--val-images",
        type=int,
        default=DEFAULT_VAL_IMAGES,
        help="val images of --split besides the samples (0: samples only)",
    )
    parser.add_argument("--split", type=Path, default=SHIPPED_SPLIT)
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--seed", type=int, default=0, help="which val images are drawn")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="cores emulated at once (one process and one machine core each)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=CACHE,
        help="where outputs are kept by network, images and machine, so a file re-shipped "
        "with only a new card is not emulated again (default: %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, help="folder for arm_report.{json,md} (default: the files' folder)"
    )
    return parser


@reported("export.arm")
def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.setup:
        print(f"emulated aarch64 runtime ready in {setup_runtime().root}")
        return 0
    if not args.files:
        parser.error("give the .tflite files to run (or --setup)")
    for path in args.files:
        if not path.is_file():
            parser.error(f"{path}: no such file")
        try:
            check_tflite(read_model_file(path))
        except ModelFileError as error:
            parser.error(f"{path}: {error}")
    out = args.out or Path(os.path.commonpath([p.resolve().parent for p in args.files]))
    if out.resolve() == SHIPPED_MODELS.resolve():
        parser.error(
            "only python -m export.ship writes models/: copy it to a new folder, "
            "run there (--out that folder), then ship that folder"
        )
    paths, images, description = choose_images(
        args.samples, args.split, args.val_images, args.seed
    )
    with tempfile.TemporaryDirectory(prefix="export_arm_") as scratch:
        results = run_everywhere(
            args.files, paths, args.cpus, max(1, args.jobs), args.cache, Path(scratch)
        )
    report = ArmReport(
        command=shlex.join(["python", "-m", "export.arm", *(argv or sys.argv[1:])]),
        images={"total": len(paths), "description": description, "names": images.names},
        runtimes={w: json.loads(str(r[0]["runtime"])) for w, r in results.items()},
        files=[compare_file(p, i, images, results, out) for i, p in enumerate(args.files)],
    )
    out.mkdir(parents=True, exist_ok=True)
    for path in write_report(report, out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
