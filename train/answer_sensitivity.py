"""How much one wrong answer moves the triage: reverse each yes/no answer in turn.

    python -m train.answer_sensitivity runs/NAME [--model FILE.tflite] [--split val]

For every image whose data set answered a yes/no question, the answer is reversed (the rest kept)
and the triage recomputed as the model card says, each domain at its own threshold, and a photo
that refers on its own staying referred where the card says its referral stands. Reported per
question: how many triage decisions change, and how many malignant lesions would no longer be
referred. A person answering alone can get a question wrong; this says what that costs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from contract import metrics
from contract.answers import answer_spec
from contract.card import AnswersSection
from contract.questionnaire import BY_NAME, YES_NO, Question
from contract.records import label_indices
from contract.run_folder import SPLITS
from contract.screening import apply_temperature, refer, standing_thresholds
from contract.taxonomy import LABELS
from train.answers.fitting import ratios_of_answers
from train.cli import check_run_and_model
from train.data.answers import dataset_answers
from train.evaluation.split_evaluation import card_of, photo_referrals, split_predictions


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.answer_sensitivity", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run", type=Path, help="run folder whose card has an answers section")
    parser.add_argument("--model", type=Path, help="a .tflite instead of the run's model.keras")
    parser.add_argument("--split", choices=SPLITS, default="val")
    args = parser.parse_args(argv)
    check_run_and_model(parser, args.run, args.model)
    args.card = card_of(args.run, args.model)
    if args.card.answers is None:
        parser.error("the model card has no answers section; run python -m train.fit_answers")
    return args


def recorded_choice(question: Question, value: str) -> str | None:
    index = question.recorded_index(value)
    return None if index is None else question.choices[index]


def reversed_answer_effects(
    section: AnswersSection,
    raw: np.ndarray,
    y: np.ndarray,
    domains: np.ndarray,
    answers: list[dict],
    photo_refers: np.ndarray,
) -> list[dict]:
    """One row per (domain, yes/no question): images answered, triage changes, referrals lost.
    `photo_refers`: which images the photo alone refers, at the card's photo-only calibration
    (they stay referred whatever the answers say when the card's answers say so)."""
    spec = answer_spec(section, LABELS)
    temperature, thresholds, models = spec.temperature, spec.triage, spec.models
    malignant = metrics.is_malignant(y)
    rows = []
    for domain, model in models.items():

        def referred(given: list[dict], at: np.ndarray, domain=domain) -> np.ndarray:
            ratios = ratios_of_answers(models, [domain] * len(given), given)
            probs = apply_temperature(raw[at], temperature, ratios)
            threshold = np.full(len(at), thresholds.for_domain(domain))
            if spec.photo_referral_stands:
                threshold = standing_thresholds(threshold, photo_refers[at])
            return refer(metrics.malignant_probability(probs), threshold)

        for question in (q for q in model.question_names if BY_NAME[q].choices == YES_NO):
            said = [recorded_choice(BY_NAME[question], a.get(question, "")) for a in answers]
            at = np.array([i for i, v in enumerate(said) if v and domains[i] == domain], int)
            if not len(at):
                continue
            given = [answers[i] for i in at]
            reversed_ = [{**answers[i], question: "no" if said[i] == "yes" else "yes"} for i in at]
            before, after = referred(given, at), referred(reversed_, at)
            rows.append(
                {
                    "domain": domain,
                    "question": question,
                    "images": int(len(at)),
                    "triage_changed": int((before != after).sum()),
                    "malignant_no_longer_referred": int((before & ~after & malignant[at]).sum()),
                    "malignant": int(malignant[at].sum()),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    card = args.card
    outputs = split_predictions(args.run, args.model, args.split, card)
    records = outputs.records
    domains = np.array([r.domain for r in records])
    rows = reversed_answer_effects(
        card.answers,
        outputs.raw,
        label_indices(records),
        domains,
        dataset_answers(records),
        photo_referrals(outputs.raw, card, domains),
    )
    print(f"{args.split} split, one yes/no answer reversed at a time:")
    print("| domain | question | images | triage changed | malignant no longer referred |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['domain']} | {r['question']} | {r['images']} | {r['triage_changed']} "
            f"({r['triage_changed'] / r['images']:.1%}) | {r['malignant_no_longer_referred']} "
            f"of {r['malignant']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
