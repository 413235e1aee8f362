"""The model card: what a model is, what it was trained on, and how well it did.

It is written next to `model.keras` (`contract.card.write_model_card`), and the exporter
packs it into every .tflite as `model_card.json`, so the demo server (and any client) knows the
labels, input contract, calibration temperature, triage threshold and measured metrics without
TensorFlow.
"""

from __future__ import annotations

import datetime
from dataclasses import replace

from contract.card import (
    SCHEMA_VERSION,
    Calibration,
    DataSource,
    InputContract,
    ModelCard,
    Triage,
)
from contract.images import RESIZE_RULE
from contract.taxonomy import DISPLAY_NAMES, LABELS, MALIGNANT

DISCLAIMER = (
    "This is a screening aid, not a diagnosis. It can be wrong in both directions. Whatever it "
    "says, have any lesion that is new, changing, bleeding, itching or worrying you examined by "
    "a dermatologist."
)
INTENDED_USE = (
    "Research and demonstration of on-device skin-lesion screening: self-screening practice, "
    "dermatology triage demos and benchmarking models on phones. Not a medical device; not for "
    "diagnosis or for deciding against seeing a doctor."
)
TRIAGE_RULE = (
    "P(malignant) = P(mel) + P(bcc) + P(akiec) after calibration; at or above the threshold: "
    "have a dermatologist look at it"
)
LIMITATIONS = (
    "Trained on HAM10000 (dermoscopic, mostly fair skin, from Austria and Australia) and "
    "PAD-UFES-20 (smartphone photos from Brazil): skin types, body sites and cameras outside "
    "these are under-represented.",
    "Seven classes only; other conditions (e.g. eczema, psoriasis, infections, rare tumours) "
    "are forced into one of them.",
    "Phone-photo melanomas are scarce in the training data; melanoma recall on phone photos is "
    "the least certain figure.",
    "Probabilities are calibrated on a validation split; calibration on a new population or "
    "camera can differ.",
)
DATA_SOURCES = (
    DataSource(
        name="HAM10000",
        citation="Tschandl P., Rosendahl C., Kittler H. The HAM10000 dataset, a large "
        "collection of multi-source dermatoscopic images of common pigmented skin lesions. "
        "Sci. Data 5, 180161 (2018). doi:10.7910/DVN/DBW86T",
        license="CC BY-NC 4.0",
    ),
    DataSource(
        name="PAD-UFES-20",
        citation="Pacheco A. G. C. et al. PAD-UFES-20: A skin lesion dataset composed of "
        "patient data and clinical images collected from smartphones. Data in Brief 32, 106221 "
        "(2020). doi:10.17632/zr7vgbcyr2.1",
        license="CC BY 4.0",
    ),
)
ANSWERS_LIMITATION = (
    "The optional answers (age, sex, body site, and for phone photos itch, growth, pain, change, "
    "bleeding, elevation) were learnt from what clinicians recorded in PAD-UFES-20 and HAM10000; "
    "a person answering alone may answer differently, and the measured gain assumes answers like "
    "theirs. A wrong answer can move the result either way."
)
MODEL_LICENSE = (
    "Code Apache-2.0; weights trained on HAM10000 (CC BY-NC 4.0): non-commercial use only."
)


def build_model_card(
    *,
    backbone: str,
    image_size: int,
    normalisation: str,
    hparams: dict,
    counts: dict,
    skipped: int,
    temperature: float,
    triage: Triage,
    val_metrics: dict,
    training: dict,
    colour_constancy: str | None = None,
) -> ModelCard:
    """`triage`: `ValCalibration.triage(target)` (threshold, rule, per-domain bounds).
    `colour_constancy`: the step every client applies to the input pixels (none: no key, as
    in the cards written before the step existed; `contract.colour_constancy`)."""
    return ModelCard(
        schema_version=SCHEMA_VERSION,
        name=f"skin-lesion-{backbone}",
        version=datetime.date.today().isoformat(),
        labels=LABELS,
        display_names=tuple(DISPLAY_NAMES[c] for c in LABELS),
        malignant_labels=tuple(sorted(MALIGNANT)),
        input=InputContract(
            height=image_size,
            width=image_size,
            channels=3,
            color_space="RGB",
            pixel_range=(0, 255),
            resize=RESIZE_RULE,
            colour_constancy=colour_constancy,
        ),
        preprocessing=f"inside the model: {normalisation}; feed raw pixels",
        output="softmax probabilities in the order of labels",
        backbone=backbone,
        hparams=hparams,
        counts=counts,
        skipped_images=skipped,
        calibration=Calibration(temperature=temperature, fitted_on="val"),
        triage=replace(triage, rule=TRIAGE_RULE),
        metrics={"val": val_metrics},
        training=training,
        intended_use=INTENDED_USE,
        limitations=LIMITATIONS,
        data_sources=DATA_SOURCES,
        license=MODEL_LICENSE,
        disclaimer=DISCLAIMER,
    )
