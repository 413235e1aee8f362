"""The verification report written beside the exported models (JSON and Markdown)."""

from __future__ import annotations

import json
from pathlib import Path

from export.verify import Verification

REPORT_STEM = "verification"


def write_report(
    out_dir: Path,
    run_dir: Path,
    results: dict[str, list[Verification]],
    max_loss_points: float,
    failures: list[str],
) -> tuple[Path, Path]:
    data = {
        "run": str(run_dir),
        "max_balanced_accuracy_loss_points": max_loss_points,
        "passed": not failures,
        "failures": failures,
        "splits": {split: [v.to_dict() for v in vs] for split, vs in results.items()},
    }
    json_path = out_dir / f"{REPORT_STEM}.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    lines = [
        f"# Export verification of `{run_dir}`",
        "",
        f"Gate: a variant fails if, in any domain, it loses more than {max_loss_points} points "
        "of balanced accuracy against the Keras model and the loss is beyond noise: its 95% "
        "interval, drawing whole lesions / patients, lies above zero (one of 7 melanomas is 2.9 "
        f"points of a phone split). Result: {'passed' if not failures else 'FAILED'}.",
        "",
    ]
    for split, verifications in results.items():
        domains = list(verifications[0].balanced_accuracy) if verifications else []
        lines += [
            f"## {split} split ({verifications[0].n if verifications else 0} images)",
            "",
            "| variant | size (KB) | top-1 agreement | max prob. diff | "
            + " | ".join(f"bal. acc. {d} (Keras); points lost [95% interval]" for d in domains)
            + " |",
            "|---|---:|---:|---:|" + "---:|" * len(domains),
        ]
        for v in verifications:
            losses = v.balanced_accuracy_loss()
            cells = [
                f"{v.balanced_accuracy[d]:.4f} ({v.keras_balanced_accuracy[d]:.4f}); "
                f"{losses[d]:+.2f} [{low:+.2f}, {high:+.2f}]"
                for d in domains
                for low, high in [v.balanced_accuracy_loss_interval[d]]
            ]
            lines.append(
                f"| {v.variant} | {v.file_bytes / 1024:.0f} | {v.top1_agreement:.4f} | "
                f"{v.max_probability_difference:.4f} | " + " | ".join(cells) + " |"
            )
        lines.append("")
    lines += [f"- {f}" for f in failures]
    md_path = out_dir / f"{REPORT_STEM}.md"
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return json_path, md_path
