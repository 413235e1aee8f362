"""contract.triage: which threshold a photo gets, from a card's triage section."""

from __future__ import annotations

import numpy as np
import pytest

from contract.card import CardError, Triage

SECTION = {
    "malignant_threshold": 0.05,
    "by_domain": {
        "dermoscopic": {"own_threshold": 0.15, "sensitivity_lower_bound_95": 0.95},
        "phone": {"own_threshold": 0.05, "sensitivity_lower_bound_95": 0.96},
    },
}


def test_a_stated_kind_gets_its_own_threshold_and_an_unstated_one_the_lowest():
    thresholds = Triage.from_json(SECTION).thresholds
    assert thresholds.for_domain("dermoscopic") == 0.15
    assert thresholds.for_domain("phone") == 0.05
    assert thresholds.for_domain(None) == thresholds.for_domain("") == 0.05
    assert thresholds.for_domain("microscope") == 0.05  # a kind the card has no threshold for


def test_each_image_of_a_split_gets_its_kinds_threshold():
    thresholds = Triage.from_json(SECTION).thresholds
    per_image = thresholds.for_images(["phone", "dermoscopic", "dermoscopic"])
    assert per_image.dtype == np.float64
    assert per_image.tolist() == [0.05, 0.15, 0.15]


def test_a_card_without_per_kind_thresholds_has_one_for_every_photo():
    thresholds = Triage.from_json({"malignant_threshold": 0.3}).thresholds
    assert thresholds.by_domain == {}
    assert thresholds.for_images(["phone", "dermoscopic"]).tolist() == [0.3, 0.3]
    assert thresholds.as_json() == {"malignant_threshold": 0.3, "by_domain": {}}


@pytest.mark.parametrize(
    "section",
    [
        {"malignant_threshold": "high"},
        {"malignant_threshold": 0.3, "by_domain": {"phone": {"sensitivity": 0.9}}},
        {"malignant_threshold": 0.3, "by_domain": {"phone": 0.2}},
        {"malignant_threshold": 0.3, "by_domain": ["phone"]},
    ],
)
def test_a_malformed_section_is_a_card_error(section):
    with pytest.raises(CardError, match="^Triage"):
        Triage.from_json(section)
