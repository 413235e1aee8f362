"""Cross-fitting each kind's threshold (`python -m train.crossfit`, issue 32 item 1): the folds
deal whole train+val lesions and photo patients, each fold's split moves exactly them to test,
and each kind's threshold written is the lower-bound rule on its pooled out-of-fold scores."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from contract.card import DomainTriage, ModelCard, read_model_card, write_model_card
from contract.records import Record
from contract.run_folder import SPLIT_CSV, SPLITS, read_split, write_split
from contract.taxonomy import DERMOSCOPIC, PHONE
from train.data.folds import FoldError, deal_folds, fold_groups, fold_split, moved_records

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CARD = REPO / "models" / "model_card.json"
MALIGNANT = {"mel", "bcc", "akiec"}


# ------------------------------------------------------------------------------------------
# Dealing and moving, on synthetic records (no images)
# ------------------------------------------------------------------------------------------


def synthetic_split() -> dict[str, list[Record]]:
    """30 phone patients (a photo and a cut-out each, every third malignant) over train, val
    and test, and dermoscopic lesions in each split."""
    splits: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for i in range(30):
        split = SPLITS[i % 3] if i < 24 else "train"
        label = "mel" if i % 3 == 1 else "nv"
        group = f"PAD/PAT_{i}"
        for folder in ("photos", "cutouts"):
            path = Path(f"{folder}/PAT_{i}.jpg")
            splits[split].append(Record(path, label, group, PHONE, "PAD"))
    for i in range(12):
        record = Record(Path(f"ham/{i}.jpg"), "bcc", f"HAM/{i}", DERMOSCOPIC, "HAM")
        splits[SPLITS[i % 3]].append(record)
    return splits


def fitted_groups(splits: dict[str, list[Record]]) -> dict[str, tuple[str, bool]]:
    """Every train+val lesion / phone patient, its kind and whether it is malignant (all
    synthetic phone patients have a photo)."""
    return {r.group: (r.domain, r.label in MALIGNANT) for s in ("train", "val") for r in splits[s]}


def test_each_group_lands_in_exactly_one_fold_stratified_by_kind_and_malignancy():
    groups = {f"p{i}": (PHONE, i % 4 == 0) for i in range(43)}  # 11 malignant
    groups |= {f"d{i}": (DERMOSCOPIC, i % 5 == 0) for i in range(61)}  # 13 malignant
    folds = deal_folds(groups, 5, seed=3)
    dealt = [g for fold in folds for g in fold]
    assert sorted(dealt) == sorted(groups)  # every group, none twice
    for stratum in set(groups.values()):
        shares = [sum(groups[g] == stratum for g in fold) for fold in folds]
        assert max(shares) - min(shares) <= 1
        assert min(shares) >= 1
    sizes = [len(fold) for fold in folds]
    assert max(sizes) - min(sizes) <= 1


def test_the_deal_is_fixed_by_its_seed():
    groups = {f"p{i}": (PHONE, i % 3 == 0) for i in range(40)}
    assert deal_folds(groups, 4, seed=1) == deal_folds(dict(reversed(groups.items())), 4, 1)
    assert deal_folds(groups, 4, seed=1) != deal_folds(groups, 4, seed=2)


@pytest.mark.parametrize("k", [0, 1, 41])
def test_too_few_folds_or_groups_are_refused(k: int):
    with pytest.raises(FoldError):
        deal_folds({f"p{i}": (PHONE, i % 2 == 0) for i in range(40)}, k)


def test_a_fold_moves_its_patients_train_and_val_images_and_nothing_else():
    splits = synthetic_split()
    patients = sorted(g for g, (kind, _) in fitted_groups(splits).items() if kind == PHONE)
    fold = patients[:5]
    moved = fold_split(splits, fold)
    before = {r: s for s in SPLITS for r in splits[s]}
    after = {r: s for s in SPLITS for r in moved[s]}
    assert set(before) == set(after)
    changed = {r for r in before if before[r] != after[r]}
    assert changed == {r for r in before if r.group in fold and before[r] != "test"}
    assert {after[r] for r in changed} == {"test"} and len(changed) == 10  # photo and cut-out
    assert moved["test"][: len(splits["test"])] == splits["test"]  # the original test stays
    sides = Counter((r.group, s) for s in SPLITS for r in moved[s])
    assert len({g for g, _ in sides}) == len(sides)  # no patient in two splits
    assert sorted(moved_records(splits, moved, "fold"), key=str) == sorted(changed, key=str)


def test_every_fitted_lesion_and_patient_is_moved_by_exactly_one_fold():
    splits = synthetic_split()
    fitted = fitted_groups(splits)
    folds = [fold_split(splits, f) for f in deal_folds(fitted, 3, seed=0)]
    groups = [{r.group for r in moved_records(splits, f, "fold")} for f in folds]
    assert sorted(g for fold in groups for g in fold) == sorted(fitted)


def _move(splits, record: Record, to: str) -> dict[str, list[Record]]:
    moved = {s: [r for r in splits[s] if r != record] for s in SPLITS}
    moved[to].append(record)
    return moved


def test_a_split_that_is_not_a_fold_of_the_original_is_refused():
    splits = synthetic_split()
    phone = next(r for r in splits["train"] if r.domain == PHONE)
    dermoscopic = next(r for r in splits["train"] if r.domain == DERMOSCOPIC)
    with pytest.raises(FoldError, match="moves .* from train to val"):
        moved_records(splits, _move(splits, dermoscopic, "val"), "f")
    with pytest.raises(FoldError, match="only part of patient"):
        moved_records(splits, _move(splits, phone, "test"), "f")
    with pytest.raises(FoldError, match="other images"):
        moved_records(splits, {**splits, "test": splits["test"][1:]}, "f")
    with pytest.raises(FoldError, match="moves no image"):
        moved_records(splits, splits, "f")


# ------------------------------------------------------------------------------------------
# The card: only the fitted kinds' own thresholds change
# ------------------------------------------------------------------------------------------


def test_a_fitted_threshold_replaces_only_its_kinds_own(tmp_path: Path):
    from train.evaluation.crossfit import with_kind_triage

    card = read_model_card(SHIPPED_CARD.parent)
    phone = DomainTriage(
        own_threshold=0.04,
        sensitivity_lower_bound_95=0.951,
        fitted_on={"images": 486, "malignant_images": 268, "malignant_groups": 208, "folds": 5},
        chosen_on="out-of-fold",
    )
    new = with_kind_triage(card, {PHONE: phone})
    write_model_card(tmp_path, new)
    assert read_model_card(tmp_path) == new  # the new key reads back
    assert new.triage.by_domain[PHONE] == phone
    assert new.triage.by_domain[DERMOSCOPIC] == card.triage.by_domain[DERMOSCOPIC]
    assert new.triage.malignant_threshold == 0.04  # the lowest of the kinds'
    higher = with_kind_triage(card, {PHONE: replace(phone, own_threshold=0.5)})
    assert higher.triage.malignant_threshold == card.triage.by_domain[DERMOSCOPIC].own_threshold
    assert new.answers.triage == card.answers.triage  # the answers' thresholds stay
    assert new.metrics == {} and new.answers.metrics is None  # measured at the old threshold
    unchanged = replace(new, triage=card.triage, metrics=card.metrics, answers=card.answers)
    assert unchanged == card
    assert new.triage.chosen_on.startswith("val; phone: out-of-fold")
    both = with_kind_triage(card, {PHONE: phone, DERMOSCOPIC: replace(phone, own_threshold=0.2)})
    assert both.triage.by_domain[DERMOSCOPIC].own_threshold == 0.2
    assert "val" not in both.triage.chosen_on


# ------------------------------------------------------------------------------------------
# The command's usage errors (fold runs faked: they are refused before any model is read)
# ------------------------------------------------------------------------------------------


def _fold_runs(tmp_path: Path, splits, folds, finished: bool = True) -> list[Path]:
    runs = []
    for k, fold in enumerate(folds, start=1):
        run = tmp_path / f"fold_{k}" / "run"
        run.mkdir(parents=True)
        write_split(run / SPLIT_CSV, fold_split(splits, fold))
        if finished:
            (run / "model.keras").write_bytes(b"")
            shutil.copy(SHIPPED_CARD, run)
        runs.append(run)
    return runs


def _card_run(tmp_path: Path, splits) -> Path:
    run = tmp_path / "shipped"
    run.mkdir()
    write_split(run / SPLIT_CSV, splits)
    shutil.copy(SHIPPED_CARD, run)
    return run


def _refused(argv: list[str], capsys) -> str:
    from train.crossfit import main

    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_thresholds_refuses_unfinished_other_split_overlapping_or_single_folds(
    tmp_path: Path, capsys
):
    splits = synthetic_split()
    folds = deal_folds(fitted_groups(splits), 3, seed=0)
    card = _card_run(tmp_path, splits)
    runs = _fold_runs(tmp_path / "ok", splits, folds)
    lesion = next(r for r in splits["val"] if r.domain == DERMOSCOPIC)
    other = _move(splits, lesion, "train")  # another split: one lesion in train, not val
    elsewhere = _fold_runs(tmp_path / "other", other, folds)
    unfinished = _fold_runs(tmp_path / "unfinished", splits, folds, finished=False)
    overlapping = _fold_runs(tmp_path / "overlap", splits, [folds[0], folds[0][:2]])
    command = ["thresholds", "--card", card]
    assert "model.keras not found" in _refused([*command, *unfinished], capsys)
    assert "not a fold of" in _refused([*command, *elsewhere], capsys)
    assert "both move patient" in _refused([*command, *overlapping], capsys)
    assert "at least 2" in _refused([*command, runs[0]], capsys)
    assert "at least 2" in _refused(["folds", card, "--folds", 1, "--out", tmp_path / "f"], capsys)
    assert card.joinpath("model_card.json").read_bytes() == SHIPPED_CARD.read_bytes()


# ------------------------------------------------------------------------------------------
# On real images: a small part of the shipped split
# ------------------------------------------------------------------------------------------


def shipped_subset(data_dir: Path, photo_patients: int = 24) -> dict[str, list[Record]]:
    """Part of the shipped split on the images of `data_dir`: `photo_patients` train+val phone
    patients with a photo (half malignant, all their images), 4 known only by cut-outs, 3 test
    patients, and up to 8 dermoscopic images per class in train, 3 in val and test."""
    rows = list(csv.DictReader((REPO / "recipes" / "shipped_2025_split.csv").open()))
    for row in rows:
        row["path"] = str(data_dir / Path(row["path"]).relative_to("../shared/data"))
    phone = [r for r in rows if r["domain"] == PHONE]
    with_photo = {r["group"] for r in phone if "/pad_ufes20/" in r["path"]}
    fitted = sorted({r["group"] for r in phone if r["split"] != "test"})
    bad = {r["group"] for r in phone if r["label"] in MALIGNANT}
    chosen = [g for g in fitted if g in with_photo and g in bad][: photo_patients // 2]
    chosen += [g for g in fitted if g in with_photo and g not in bad][: photo_patients // 2]
    chosen += [g for g in fitted if g not in with_photo][:4]
    chosen += sorted({r["group"] for r in phone if r["split"] == "test"})[:3]
    kept = [r for r in phone if r["group"] in chosen]
    per_class = {"train": 8, "val": 3, "test": 3}
    taken: Counter = Counter()
    for row in rows:
        key = (row["split"], row["label"])
        if row["domain"] == DERMOSCOPIC and taken[key] < per_class[row["split"]]:
            taken[key] += 1
            kept.append(row)
    splits: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for r in kept:
        record = Record(Path(r["path"]), r["label"], r["group"], r["domain"], r["source"])
        splits[r["split"]].append(record)
    return splits


def test_folds_deal_every_lesion_and_photo_patient_of_train_and_val_once(
    data_dir: Path, tmp_path, capsys
):
    from train.crossfit import main

    splits = shipped_subset(data_dir)
    run = tmp_path / "shipped"
    run.mkdir()
    write_split(run / SPLIT_CSV, splits)
    outs = {name: tmp_path / name for name in ("a", "b", "c")}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert (
            main(["folds", str(run), "--folds", "3", "--seed", str(seed), "--out", str(outs[name])])
            == 0
        )
    assert "python -m train --split-from" in capsys.readouterr().out
    photos: dict[str, bool] = {}  # each photo patient: is one of its photos malignant
    for r in (r for s in ("train", "val") for r in splits[s] if "/pad_ufes20/" in str(r.path)):
        photos[r.group] = photos.get(r.group, False) or r.label in MALIGNANT
    moved_groups = []
    for k in (1, 2, 3):
        fold = read_split(outs["a"] / f"fold_{k}" / SPLIT_CSV)
        moved = moved_records(splits, fold, f"fold {k}")  # nothing else moved
        groups = {r.group for r in moved}
        assert sum(photos.get(g, False) for g in groups) >= 1  # each a malignant photo patient
        moved_groups += sorted(groups)
        sides = {(r.group, s) for s in SPLITS for r in fold[s]}
        assert len({g for g, _ in sides}) == len(sides)  # no patient in two splits
        same = (outs["b"] / f"fold_{k}" / SPLIT_CSV).read_bytes()
        assert same == (outs["a"] / f"fold_{k}" / SPLIT_CSV).read_bytes()
    lesions = {r.group for s in ("train", "val") for r in splits[s] if r.domain == DERMOSCOPIC}
    assert sorted(moved_groups) == sorted({*photos, *lesions})  # cut-out-only patients stay
    dealt = fold_groups(splits)
    assert {g: bad for g, (kind, bad) in dealt.items() if kind == PHONE} == photos
    assert {g for g, (kind, _) in dealt.items() if kind == DERMOSCOPIC} == lesions
    assert any(
        (outs["c"] / f"fold_{k}" / SPLIT_CSV).read_bytes()
        != (outs["a"] / f"fold_{k}" / SPLIT_CSV).read_bytes()
        for k in (1, 2, 3)
    )


def test_thresholds_from_a_model_file_in_each_fold_run(data_dir: Path, tmp_path: Path, capsys):
    """`--model`: each fold run's .tflite, calibrated by the temperature of the card it carries
    (the fixture's 1.5); every uncut train+val phone photo is predicted once."""
    from contract.bootstrap import confident_threshold
    from contract.interpreter import predict_tflite
    from contract.model_file import model_card, read_model_file
    from contract.records import Skipped, decode_records, label_indices
    from contract.screening import apply_temperature
    from train.crossfit import main

    model = REPO / "tests" / "fixtures" / "tiny_uint8.tflite"
    splits = shipped_subset(data_dir)
    shipped = _card_run(tmp_path, splits)
    photos = [r for s in ("train", "val") for r in splits[s] if "/pad_ufes20/" in str(r.path)]
    patients = {r.group: (PHONE, r.label in MALIGNANT) for r in photos}  # folds of phone only
    runs = _fold_runs(tmp_path, splits, deal_folds(patients, 2), finished=False)
    for run in runs:
        shutil.copy(model, run / "model.tflite")
    argv = ["thresholds", *runs, "--card", shipped, "--model", "model.tflite"]
    assert main([str(a) for a in argv]) == 0

    pixels, photos = decode_records(photos, 64, Skipped())
    temperature = model_card(read_model_file(model)).calibration.temperature
    probs = apply_temperature(predict_tflite(model, pixels), temperature)
    groups = np.array([r.group for r in photos])
    threshold, bound = confident_threshold(label_indices(photos), probs, groups, 0.95)
    card = read_model_card(shipped)
    phone = card.triage.by_domain[PHONE]
    assert phone.own_threshold == pytest.approx(threshold, abs=1e-6)
    assert phone.sensitivity_lower_bound_95 == pytest.approx(bound, abs=1e-6)
    assert phone.fitted_on["images"] == len(photos) and phone.fitted_on["folds"] == 2
    before = read_model_card(SHIPPED_CARD.parent).triage.by_domain[DERMOSCOPIC]
    assert card.triage.by_domain[DERMOSCOPIC] == before  # no dermoscopic image in these folds


# ------------------------------------------------------------------------------------------
# End to end with tiny fold networks
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_threshold_written_is_the_rule_on_the_pooled_out_of_fold_scores(
    data_dir: Path, tmp_path: Path, capsys
):
    import keras

    from contract.bootstrap import confident_threshold
    from contract.lesion_gate import is_cutout
    from contract.records import Skipped, decode_records, label_indices
    from contract.screening import apply_temperature
    from train.__main__ import main as train
    from train.crossfit import main
    from train.model.predict import predict_keras

    splits = shipped_subset(data_dir)
    shipped = _card_run(tmp_path, splits)
    card_before = read_model_card(shipped)
    assert main(["folds", str(shipped), "--folds", "3", "--out", str(tmp_path / "folds")]) == 0
    runs = []
    for k in (1, 2, 3):
        run = tmp_path / "folds" / f"fold_{k}" / "run"
        argv = f"--split-from {run.parent / SPLIT_CSV} --out {run} --backbone tiny_cnn "
        argv += f"--epochs 1 --image-size 64 --batch-size 16 --seed {k}"
        assert train(argv.split()) == 0
        runs.append(run)
    capsys.readouterr()
    assert main(["thresholds", *map(str, runs), "--card", str(shipped)]) == 0
    printed = capsys.readouterr().out

    card = read_model_card(shipped)
    for kind in (PHONE, DERMOSCOPIC):  # each fold network on its own fold's uncut photos
        y, scores, groups = [], [], []
        for run in runs:
            fold = read_split(run / SPLIT_CSV)
            own = [r for r in fold["test"] if r not in splits["test"] and r.domain == kind]
            pixels, own = decode_records(own, 64, Skipped())
            photos = ~is_cutout(pixels)
            raw = predict_keras(keras.models.load_model(run / "model.keras"), pixels[photos])
            scores.append(apply_temperature(raw, read_model_card(run).calibration.temperature))
            kept = [r for r, p in zip(own, photos, strict=True) if p]
            y.append(label_indices(kept))
            groups += [r.group for r in kept]
        y, probs = np.concatenate(y), np.concatenate(scores)
        threshold, bound = confident_threshold(y, probs, np.array(groups), 0.95)
        fitted = [r for s in ("train", "val") for r in splits[s] if r.domain == kind]
        assert len(y) == sum(kind != PHONE or "/pad_ufes20/" in str(r.path) for r in fitted)
        triage = card.triage.by_domain[kind]
        assert triage.own_threshold == pytest.approx(threshold, abs=1e-6)
        assert triage.sensitivity_lower_bound_95 == pytest.approx(bound, abs=1e-6)
        assert triage.fitted_on["images"] == len(y) and triage.fitted_on["folds"] == 3
        assert "out-of-fold" in triage.chosen_on and f"{triage.own_threshold:.4f}" in printed
    assert card.triage.malignant_threshold == min(
        card.triage.by_domain[PHONE].own_threshold,
        card.triage.by_domain[DERMOSCOPIC].own_threshold,
    )
    assert isinstance(card, ModelCard) and card.answers.triage == card_before.answers.triage
