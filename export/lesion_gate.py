"""Export the lesion gate to a .tflite with its JSON packed inside, and measure the exported file.

    python -m export.lesion_gate runs/NAME --out runs/NAME/export [--variant float16]

The gate that `python -m train.lesion_gate` fitted (lesion_gate.keras and lesion_gate.json in
the run folder) is converted; its threshold is re-chosen on the exported model's own distances
of val lesion photos and of the development non-skin set (`contract.lesion_gate.choose_threshold`:
quantization shifts the distance scale), and the numbers reported are those of the .tflite run by
LiteRT: false rejections of val (and, unused for any choice, test) lesion photos per domain, and
the verdict on every image of both non-skin sets (`export.non_skin_images`).
`python -m export.gate_threshold` applies the same measurement to an exported file.

The shipped variant is float16, not int8: measured on our data with the earlier head-only gate,
full-integer quantization (its ranges set by lesion photos) pulled blank, single-colour and noise
frames below the threshold (non-skin rejection 63 % against 94 % in float16), because the
L2-normalised features of such weak-activation images are dominated by quantization error.
Dynamic-range rejected as well as float16 but ran ten times slower on CPU (52 against 5 ms). For
the blocks 3-5 gate (issue 36) dynamic-range is 0.88 MB against 1.48, but moved val distances up
to 33% from the Keras model's (float16: 2.5%) and ran slower again (docs/lesion_gate.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from contract.images import resize_to_input
from contract.interpreter import predict_tflite
from contract.lesion_gate import (
    GATE_JSON,
    GATE_KERAS,
    THRESHOLD_RULE,
    choose_threshold,
    false_rejections,
    lesion_photos,
)
from contract.model_file import GATE_FILE
from contract.run_folder import SPLIT_CSV, RunFolderError, check_run_folder, read_split
from export.convert import VARIANTS, QuantizationConfig, convert
from export.metadata import append_files
from export.non_skin_images import development_images, non_skin_images
from export.representative import representative_records
from export.ship import export_folder

GATE_TFLITE = "lesion_gate.tflite"
REPORT_STEM = "lesion_gate_report"
REPRESENTATIVE_IMAGES = 200
BENCH_THREADS = 2
DEFAULT_VARIANT = "float16"


def _distances(model: bytes, pixels: np.ndarray, threads: int = BENCH_THREADS) -> np.ndarray:
    return predict_tflite(model, pixels, threads)[:, 0]


def _milliseconds_per_image(model: bytes, image: np.ndarray, repeats: int = 30) -> float:
    _distances(model, image[None])  # warm up
    start = time.perf_counter()
    _distances(model, np.repeat(image[None], repeats, axis=0))
    return 1000 * (time.perf_counter() - start) / repeats


def pack(model: bytes, info: dict) -> bytes:
    """Append the JSON as an uncompressed zip member, like the classifier's associated files."""
    return append_files(model, {GATE_FILE: json.dumps(info, indent=2).encode("utf-8")})


def _lesion_split(records: list, size: int) -> tuple[np.ndarray, np.ndarray]:
    pixels, kept = lesion_photos(records, size)
    return pixels, np.array([r.domain for r in kept])


def rule_text(margin: float) -> str:
    """The report's and the packed JSON's words for the verdict and the threshold rule."""
    return f"not a lesion photo when distance > threshold ({THRESHOLD_RULE.format(margin=margin)})"


def measure_gate(model: bytes, split: dict, size: int, margin: float) -> tuple[float, dict]:
    """The threshold chosen on val lesion photos and the development set, and what it does:
    false rejections on val and test per domain, verdicts on both non-skin sets."""
    val, val_domains = _lesion_split(split["val"], size)
    val_distances = _distances(model, val)
    development = _named_distances(model, development_images(), size)
    threshold = choose_threshold(val_distances, np.array(list(development.values())), margin)
    test, test_domains = _lesion_split(split["test"], size)
    test_distances = _distances(model, test)
    evaluation = _verdicts(_named_distances(model, non_skin_images(), size), threshold)
    developed = _verdicts(development, threshold)
    return threshold, {
        "threshold_margin": margin,
        "largest_val_lesion_distance": float(val_distances.max()),
        "lowest_development_distance": min(development.values()),
        "val_images": _counts(val_domains),
        "val_false_rejection": false_rejections(val_distances, val_domains, threshold),
        "test_images": _counts(test_domains),
        "test_false_rejection": false_rejections(test_distances, test_domains, threshold),
        "non_skin_rejection": float(np.mean([x["rejected"] for x in evaluation])),
        "non_skin": evaluation,
        "development_rejection": float(np.mean([x["rejected"] for x in developed])),
        "development": developed,
    }


def write_gate(model: bytes, info: dict, measured: dict, out_dir: Path) -> Path:
    """OUT/lesion_gate.tflite (`info` and the measured summary packed in) and its report."""
    summary = {k: v for k, v in measured.items() if k not in ("non_skin", "development")}
    info = {**info, "measured": summary}
    packed = pack(model, info)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / GATE_TFLITE
    path.write_bytes(packed)
    report = {**info, "file_bytes": len(packed), "measured": measured}
    (out_dir / f"{REPORT_STEM}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / f"{REPORT_STEM}.md").write_text(_markdown(report))
    return path


def export_lesion_gate(run_dir: Path, out_dir: Path, variant: str = DEFAULT_VARIANT) -> Path:
    """Convert the fitted gate, choose the threshold (`contract.lesion_gate`), measure, write
    the .tflite and the report."""
    import keras

    fitted = json.loads((run_dir / GATE_JSON).read_text(encoding="utf-8"))
    size = int(fitted["image_size"])
    split = read_split(run_dir / SPLIT_CSV)
    reps = None
    if variant in ("int8", "int8_io"):
        seed = int(fitted["config"]["seed"])
        chosen = representative_records(split["train"], REPRESENTATIVE_IMAGES, seed)
        reps, _ = _lesion_split(chosen, size)
    model = convert(
        keras.saving.load_model(run_dir / GATE_KERAS), QuantizationConfig(variant, reps)
    )
    margin = float(fitted["config"]["threshold_margin"])
    threshold, measured = measure_gate(model, split, size, margin)
    info = {
        "threshold": threshold,
        "image_size": size,
        "components": int(fitted["components"]),
        "output": fitted["output"],
        "rule": rule_text(margin),
        "features": fitted["features"],
    }
    speed = _milliseconds_per_image(model, np.zeros((size, size, 3), np.uint8))
    measured = {
        "variant": variant,
        "keras_threshold": fitted["threshold"],
        **measured,
        "ms_per_image_litert_2_threads": speed,
    }
    return write_gate(model, info, measured, out_dir)


def _counts(domains: np.ndarray) -> dict:
    return {d: int(np.sum(domains == d)) for d in sorted(set(domains))}


def _named_distances(model: bytes, images: dict, size: int) -> dict[str, float]:
    pixels = np.stack([resize_to_input(im, size, size) for im in images.values()])
    return {name: float(d) for name, d in zip(images, _distances(model, pixels), strict=True)}


def _verdicts(distances: dict[str, float], threshold: float) -> list[dict]:
    return [
        {"name": name, "distance": d, "rejected": bool(d > threshold)}
        for name, d in distances.items()
    ]


def _markdown(report: dict) -> str:
    m = report["measured"]

    def rates(split: str) -> str:
        counts = m[f"{split}_images"]
        counts = {**counts, "overall": sum(counts.values())}
        return ", ".join(
            f"{k} {100 * v:.1f} % ({round(v * counts[k])}/{counts[k]})"
            for k, v in m[f"{split}_false_rejection"].items()
        )

    keras = f"; Keras float model: {m['keras_threshold']:.4g}" if "keras_threshold" in m else ""
    lines = [
        '# Lesion gate ("not a skin-lesion photo")',
        "",
        f"- Model: `{GATE_TFLITE}`, {m['variant']}, {report['file_bytes'] / 1e6:.2f} MB, "
        f"input {report['image_size']} px, {report['components']} components",
        f"- Output: {report['output']}; {report['rule']}",
        f"- Threshold: {report['threshold']:.4g} (margin {m['threshold_margin']:g}, largest val "
        f"lesion distance {m['largest_val_lesion_distance']:.4g}, lowest development distance "
        f"{m['lowest_development_distance']:.4g}{keras})",
        *[f"- {line}" for line in report.get("history", [])],
        f"- False rejections, val lesion photos (no cut-outs): {rates('val')}",
        f"- False rejections, test lesion photos (not used to choose anything): {rates('test')}",
        f"- Non-skin images rejected (evaluation set, not used to choose anything): "
        f"{_share(m['non_skin'])}",
        f"- Development set (where gate designs were compared): {_share(m['development'])}",
        f"- LiteRT, {BENCH_THREADS} threads: {m['ms_per_image_litert_2_threads']:.1f} ms per image",
        "",
        "| set | non-skin image | distance | verdict |",
        "|---|---|---:|---|",
    ]
    for title, key in (("evaluation", "non_skin"), ("development", "development")):
        for x in m[key]:
            verdict = "rejected" if x["rejected"] else "**accepted (slipped through)**"
            lines.append(f"| {title} | {x['name']} | {x['distance']:.4g} | {verdict} |")
    return "\n".join(lines) + "\n"


def _share(verdicts: list[dict]) -> str:
    rejected = sum(x["rejected"] for x in verdicts)
    return f"{100 * rejected / len(verdicts):.1f} % ({rejected}/{len(verdicts)})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m export.lesion_gate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run", type=Path, help="a run folder with a fitted lesion gate")
    parser.add_argument(
        "--out", type=Path, help="the run's export folder (default: RUN/export); not models/"
    )
    parser.add_argument("--variant", default=DEFAULT_VARIANT, choices=VARIANTS)
    args = parser.parse_args(argv)
    try:
        args.out = export_folder(args.run, args.out)
    except ValueError as error:
        parser.error(str(error))
    try:
        files = (SPLIT_CSV, GATE_KERAS, GATE_JSON)
        check_run_folder(args.run, files, written_by="python -m train.lesion_gate")
    except RunFolderError as error:
        parser.error(str(error))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = export_lesion_gate(args.run, args.out, args.variant)
    print((args.out / f"{REPORT_STEM}.md").read_text())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
