"""The label taxonomy, in one place.

Every stage uses the seven HAM10000 diagnosis codes. PAD-UFES-20 (smartphone photos) is mapped
onto them; SCC is folded into akiec because akiec covers actinic keratosis and intraepithelial
carcinoma and SCC is its invasive form.
"""

from __future__ import annotations

LABELS: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

DISPLAY_NAMES: dict[str, str] = {
    "akiec": "Actinic keratosis / intraepithelial carcinoma",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic nevus (mole)",
    "vasc": "Vascular lesion",
}

# Malignant or pre-malignant: these are the classes a screening aid must not miss.
MALIGNANT: frozenset[str] = frozenset({"akiec", "bcc", "mel"})

PAD_UFES20_TO_HAM: dict[str, str] = {
    "NEV": "nv",
    "MEL": "mel",
    "BCC": "bcc",
    "SEK": "bkl",
    "ACK": "akiec",
    "SCC": "akiec",
}

DERMOSCOPIC = "dermoscopic"
PHONE = "phone"
DOMAINS: tuple[str, ...] = (DERMOSCOPIC, PHONE)


def label_index(code: str) -> int:
    """Index of a diagnosis code in the model's output vector."""
    try:
        return LABELS.index(code)
    except ValueError:
        raise ValueError(f"unknown diagnosis code {code!r}; expected one of {LABELS}") from None


def malignant_mask() -> list[bool]:
    """One flag per output, True where the class counts towards P(malignant)."""
    return [code in MALIGNANT for code in LABELS]
