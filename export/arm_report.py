"""The ARM report written beside the model files (JSON and Markdown): `arm_report.*`.

`export.ship` ships it with the folder and refuses it when it describes other files than the
ones being shipped (a stale report), so models/ never holds an ARM report of another model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from export.arm_compare import CoreComparison

REPORT_STEM = "arm_report"
SHOWN_FEATURES = ("asimd", "asimddp", "i8mm", "sve", "sve2", "avx2", "avx512_vnni")  # int8 paths


@dataclass
class FileResult:
    """One model file: what it is and needs, and how each core compares with x86."""

    file: str  # relative to the report's folder
    sha256: str
    kind: str  # classifier, gate or segmenter
    output: dict[str, Any]  # the output tensor (contract.tensors.TensorSpec.as_json)
    operators: list[dict[str, Any]]  # name, count and versions, as export.ops_report counts
    cores: dict[str, CoreComparison]


@dataclass
class ArmReport:
    command: str
    images: dict[str, Any]  # how many of each source, and how the val ones were drawn
    runtimes: dict[str, dict[str, Any]]  # "x86_64" and each core -> export.arm_worker.runtime_info
    files: list[FileResult]

    def same_runtime_versions(self) -> bool:
        packages = [r["packages"] for r in self.runtimes.values()]
        return all(p == packages[0] for p in packages)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "same_runtime_versions": self.same_runtime_versions()}


def _decisions(core: CoreComparison) -> str:
    cells = [f"{name} {agree}/{total}" for name, (agree, total) in core.decisions.items()]
    if core.dice:
        cells.append(f"Dice min {core.dice['min']:.4f}, mean {core.dice['mean']:.4f}")
    return "; ".join(cells)


def _max_difference(result: FileResult, core: CoreComparison) -> str:
    if result.output["dtype"].startswith("float"):
        return f"{core.max_steps:.3g} (float)"
    return f"{core.max_steps:g} step{'' if core.max_steps == 1 else 's'}"


def markdown(report: ArmReport) -> str:
    n = report.images["total"]
    versions = "same" if report.same_runtime_versions() else "DIFFERENT"
    lines = [
        "# Shipped files on ARM cores (emulated) against x86",
        "",
        f"Command: `{report.command}`",
        "",
        f"{n} images: {report.images['description']}. Each file ran on x86 and on each ARM core "
        "under user-mode QEMU, decoding with `contract.images` and feeding with "
        "`contract.tensors.invoke` on both sides. Emulation reproduces the cores' instructions, "
        "so their kernels and rounding, not their speed: no timing here is a phone's.",
        "",
        f"Runtime versions on x86 and ARM: {versions}; so an ARM/x86 difference below comes "
        "from the cores' kernels"
        + (
            ", not from the runtime version."
            if versions == "same"
            else " or from the versions: compare before concluding."
        ),
        "",
        "| where | machine | Python | ai-edge-litert | numpy | Pillow | CPU features |",
        "|---|---|---|---|---|---|---|",
    ]
    for where, info in report.runtimes.items():
        features = [f for f in info["cpu"].get("features", []) if f in SHOWN_FEATURES]
        packages = info["packages"]
        lines.append(
            f"| {where} | {info['machine']} | {info['python']} | {packages['ai-edge-litert']} | "
            f"{packages['numpy']} | {packages['pillow']} | {' '.join(features) or '-'} |"
        )
    for result in report.files:
        lines += [
            "",
            f"## `{result.file}` ({result.kind})",
            "",
            "| core | decoded pixels identical | images with any output difference | "
            "largest difference | agreement with x86 | outputs identical to |",
            "|---|---:|---:|---:|---|---|",
        ]
        for cpu, core in result.cores.items():
            lines.append(
                f"| {cpu} | {core.decoded_identical}/{n} | {core.differing_images}/{n} | "
                f"{_max_difference(result, core)} | {_decisions(core)} | "
                f"{', '.join(core.same_outputs_as) or '-'} |"
            )
        for cpu, core in result.cores.items():
            lines += [f"- {cpu}: {json.dumps(d)}" for d in core.disagreements]
        operators = ", ".join(
            f"{o['name']} v{'/'.join(map(str, o['versions']))}" for o in result.operators
        )
        lines += ["", f"Operators (versions) it needs: {operators}."]
    return "\n".join(lines) + "\n"


def write_report(report: ArmReport, out_dir: Path) -> tuple[Path, Path]:
    json_path = out_dir / f"{REPORT_STEM}.json"
    json_path.write_text(json.dumps(report.to_dict(), indent=1) + "\n", encoding="utf-8")
    md_path = out_dir / f"{REPORT_STEM}.md"
    md_path.write_text(markdown(report), encoding="utf-8")
    return json_path, md_path


def stale_entries(folder: Path) -> list[str]:
    """The files `folder`'s ARM report measured that are gone or changed since ([] if it has
    no report): a report of other bytes must not ship beside these."""
    path = folder / f"{REPORT_STEM}.json"
    if not path.is_file():
        return []
    try:
        entries = [(e["file"], e["sha256"]) for e in json.loads(path.read_text())["files"]]
    except (ValueError, KeyError, TypeError) as error:
        return [f"{path} is not an ARM report ({error!r})"]
    stale = []
    for name, sha256 in entries:
        model = folder / name
        if not model.is_file():
            stale.append(f"{name} is not in {folder}")
        elif hashlib.sha256(model.read_bytes()).hexdigest() != sha256:
            stale.append(f"{name} changed since the ARM report measured it")
    return stale
