"""The export gate: a loss counts only when it is beyond the allowance and beyond noise."""

from __future__ import annotations

import numpy as np

from contract.taxonomy import LABELS
from export.verify import verify

MEL, NV = LABELS.index("mel"), LABELS.index("nv")


def one_hot(classes: np.ndarray) -> np.ndarray:
    probs = np.full((len(classes), len(LABELS)), 0.01)
    probs[np.arange(len(classes)), classes] = 0.9
    return probs


def phone_split(melanomas: int = 7, nevi: int = 200) -> tuple[np.ndarray, np.ndarray]:
    y = np.array([MEL] * melanomas + [NV] * nevi)
    return y, np.array([f"patient{i}" for i in range(len(y))])


def check(file_classes: np.ndarray, keras_classes: np.ndarray, y, groups):
    domains = np.array(["phone"] * len(y))
    return verify("int8", 1, one_hot(file_classes), one_hot(keras_classes), y, domains, groups)


def test_one_melanoma_changing_class_is_noise_not_a_failure():
    y, groups = phone_split()
    keras_classes = y.copy()
    file_classes = y.copy()
    file_classes[0] = NV  # 1 of 7 melanomas: 7 points of a two-class balanced accuracy
    result = check(file_classes, keras_classes, y, groups)
    assert result.balanced_accuracy_loss()["phone"] > 1.0
    low, high = result.balanced_accuracy_loss_interval["phone"]
    assert low <= 1.0 < high
    assert result.gate_failures("test", 1.0) == []


def test_a_loss_beyond_noise_fails_and_says_where():
    y, groups = phone_split(melanomas=60, nevi=200)
    file_classes = y.copy()
    file_classes[:30] = NV  # half the melanomas lost
    result = check(file_classes, y.copy(), y, groups)
    low, _ = result.balanced_accuracy_loss_interval["phone"]
    assert low > 1.0
    failures = result.gate_failures("test", 1.0)
    assert len(failures) == 2  # overall and phone (the only domain)
    assert "int8 loses 25.00 points of balanced accuracy on test/phone" in failures[1]


def test_groups_are_drawn_whole():
    """The file misses every melanoma: a loss of 50 points in each draw that holds one. When all
    7 come from one patient, a third of the draws hold none of them (no loss at all)."""
    y, groups = phone_split()
    file_classes = y.copy()
    file_classes[:7] = NV
    separate = check(file_classes, y.copy(), y, groups).balanced_accuracy_loss_interval["phone"]
    groups[:7] = "one patient"
    together = check(file_classes, y.copy(), y, groups).balanced_accuracy_loss_interval["phone"]
    assert separate == [50.0, 50.0]
    assert together == [0.0, 50.0]
