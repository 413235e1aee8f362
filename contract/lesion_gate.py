"""The lesion gate's rules that its fitting (train) and its export both apply, and its files.

`python -m train.lesion_gate` fits the gate on a run's lesion photos and leaves `GATE_KERAS`
and `GATE_JSON` (threshold, settings, what was measured) in the run folder;
`python -m export.lesion_gate` converts that model and, because quantization shifts the distance
scale, chooses the exported file's threshold on its own val distances. Both must judge the same
photos (camera photos, no cut-outs) and choose and count by the same rule, so these are here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from contract.records import Record, Skipped, decode_records

GATE_KERAS = "lesion_gate.keras"
GATE_JSON = "lesion_gate.json"  # in the run folder; the exported file packs its own


THRESHOLD_MARGIN = 1.1
THRESHOLD_RULE = (
    "threshold = min({margin:g} x the largest val lesion distance, "
    "the lowest development-set non-skin distance / {margin:g})"
)


def layer_scale(distances: np.ndarray, domains: np.ndarray, false_rejection: float) -> float:
    """The largest per-domain (1 - false_rejection) quantile: what puts each layer's distances
    on one scale before the gate takes their largest."""
    return float(
        max(np.quantile(distances[domains == d], 1 - false_rejection) for d in set(domains))
    )


def choose_threshold(
    lesion: np.ndarray, non_skin: np.ndarray | None = None, margin: float = THRESHOLD_MARGIN
) -> float:
    """`margin` x the largest val lesion distance, capped at the lowest non-skin distance /
    `margin` (`THRESHOLD_RULE`).

    A new photo lies above the largest of n val photos of its kind with probability at most
    1/(n + 1), whatever the distribution: with ~100 val phone photos, under 1% false refusals
    where a 99th percentile refused one in a hundred by construction. The cap keeps non-skin
    pictures out when the two groups come close.
    """
    if margin < 1:
        raise ValueError(f"margin must be at least 1, got {margin}")
    if len(lesion) == 0:
        raise ValueError("no val lesion distances to choose a threshold on")
    threshold = margin * float(np.max(lesion))
    if non_skin is not None and len(non_skin):
        threshold = min(threshold, float(np.min(non_skin)) / margin)
    return threshold


def false_rejections(distances: np.ndarray, domains: np.ndarray, threshold: float) -> dict:
    """Share of lesion photos above the threshold, per domain and overall."""
    rates = {d: float(np.mean(distances[domains == d] > threshold)) for d in sorted(set(domains))}
    return {**rates, "overall": float(np.mean(distances > threshold))}


def is_cutout(pixels: np.ndarray) -> np.ndarray:
    """Background-removed cut-outs (PAD-UFES-20's): over a fifth of the frame pure black.

    Measured at 128 px: camera photos have at most 12.5 % such pixels (dermoscopic vignettes),
    cut-outs at least 23.6 %, and some are black but for a few dozen pixels.
    """
    return np.mean(pixels.max(axis=-1) <= 8, axis=(1, 2)) > 0.2


def lesion_photos(records: Sequence[Record], size: int) -> tuple[np.ndarray, list[Record]]:
    """Decoded camera photos of the records, without cut-outs.

    The gate judges what people upload, which is never a cut-out; fitted with them, it learned
    that a nearly black frame looks like a lesion photo.
    """
    skipped = Skipped()
    pixels, kept = decode_records(records, size, skipped)
    skipped.warn()
    photos = ~is_cutout(pixels)
    return pixels[photos], [r for r, photo in zip(kept, photos, strict=True) if photo]
