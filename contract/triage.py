"""Which triage threshold a photo gets: its kind's own, or the one that holds for every kind.

A card's `triage.by_domain[kind].own_threshold` keeps the sensitivity target, with confidence, on
that kind of photo (dermoscopic or phone); `triage.malignant_threshold`, the lowest of them, keeps
it on every kind, so a photo whose kind nobody stated gets that one. A single threshold for both
cost dermoscopic photos most of their specificity (docs/history/more_data.md). Cards written before
thresholds were per kind have only `malignant_threshold`. Training, evaluation and the server all
pick the threshold here, and the page's JavaScript twin (static/screening.mjs) does the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_THRESHOLD = 0.5  # a model file without a card


@dataclass(frozen=True)
class TriageThresholds:
    """A triage section's thresholds (`contract.card.Triage.thresholds`): one per kind of photo,
    and one for any photo."""

    any_domain: float
    by_domain: Mapping[str, float] = field(default_factory=dict)

    def own_domain(self, domain: str | None) -> str | None:
        """`domain` when the card has a threshold of its own for it, else None."""
        return domain if domain and domain in self.by_domain else None

    def for_domain(self, domain: str | None) -> float:
        """The threshold for a photo of this kind (None: not stated)."""
        own = self.own_domain(domain)
        return self.by_domain[own] if own else self.any_domain

    def for_images(self, domains: Sequence[str]) -> np.ndarray:
        """Each image's threshold, for scoring a split whose images' kinds are known."""
        return np.array([self.for_domain(d) for d in domains], dtype=np.float64)

    def as_json(self) -> dict[str, Any]:
        return {"malignant_threshold": self.any_domain, "by_domain": dict(self.by_domain)}
