"""export.arm: the shipped files on emulated ARM cores against x86, and what is compared."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from contract.model_file import read_gate_info, read_model_file
from export import arm
from export.arm_compare import Images, differences
from export.arm_outputs import network_bytes, outputs_key
from export.arm_report import REPORT_STEM
from export.arm_runtime import RuntimeSpec
from export.ship import ShipError, check_export

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
SHIPPED = (
    MODELS / "skin_lesion_int8_mixed.tflite",
    MODELS / "small" / "skin_lesion_small_int8.tflite",
    MODELS / "lesion_gate.tflite",
    MODELS / "lesion_segmenter.tflite",
)
ARM_CORES = {"cortex-a53", "cortex-a76", "max"}


def comparer(path: Path):
    """The kind, output tensor and comparison `export.arm` uses for a shipped file, as a
    function of (images, x86 outputs, ARM outputs) with every image decoded alike."""
    kind, spec, compare = arm._comparer(read_model_file(path), path)

    def run(images: Images, x86: np.ndarray, arm_out: np.ndarray):
        return compare(images, x86, arm_out, differences(x86, arm_out, spec, len(x86)))

    return kind, spec, run


def two_images(domain: str = "phone") -> Images:
    return Images(("a.jpg", "b.jpg"), (domain, domain))


def test_sample_names_state_their_kind_of_photo():
    assert arm.sample_domain(Path("mel_phone_PAT_233_354_828.jpg")) == "phone"
    assert arm.sample_domain(Path("df_dermoscopic_ISIC_0030427.jpg")) == "dermoscopic"
    assert arm.sample_domain(Path("holiday.jpg")) is None


def test_usage_errors_say_what_is_wrong(tmp_path: Path, capsys):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model")
    for argv, message in [
        ([], "give the .tflite files"),
        ([str(junk)], "not a TFLite model"),
        ([str(SHIPPED[3])], "only python -m export.ship writes models/"),
        ([str(SHIPPED[3]), "--cpus", "a;b"], "QEMU -cpu names"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            arm.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_classifier_flip_is_counted_and_listed():
    kind, spec, compare = comparer(SHIPPED[0])
    assert kind == "classifier" and spec.dtype == np.uint8
    labels = json.loads((MODELS / "model_card.json").read_text())["labels"]
    step = spec.scale
    x86 = np.zeros((2, 7))
    x86[:, labels.index("nv")] = 1.0  # clearly benign: no referral
    arm_out = x86.copy()
    arm_out[0] = 0.0
    arm_out[0, labels.index("mel")] = 1.0  # clearly malignant: referred
    arm_out[1, labels.index("df")] += step  # one step in a class that decides nothing
    result = compare(two_images(), x86, arm_out)
    assert result.decisions == {"top-1": [1, 2], "triage": [1, 2]}
    assert result.differing_images == 2 and not result.agrees()
    assert result.max_steps == pytest.approx(round(1.0 / step, 6))
    (listed,) = result.disagreements
    assert listed["image"] == "a.jpg" and listed["what"] == "top-1 and triage"
    assert listed["top1"] == ["nv", "mel"]


def test_the_gate_compares_its_decision_at_its_threshold():
    kind, _, compare = comparer(SHIPPED[2])
    assert kind == "gate"
    threshold = read_gate_info(read_model_file(SHIPPED[2])).threshold
    x86 = np.array([[threshold * 0.5], [threshold * 0.999]])
    result = compare(two_images(), x86, np.array([[threshold * 0.5], [threshold * 1.001]]))
    assert result.decisions == {"accepted": [1, 2]}
    assert result.disagreements[0]["image"] == "b.jpg"


def test_the_segmenter_compares_outlines_by_dice():
    kind, spec, compare = comparer(SHIPPED[3])
    assert kind == "segmenter"
    size = spec.shape[1]
    x86 = np.zeros((2, size, size))
    x86[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1.0  # one square lesion
    arm_out = x86.copy()
    arm_out[1, size // 2 :, :] = 0.0  # the ARM outline of b.jpg lost its lower half
    result = compare(two_images(), x86.reshape(2, -1), arm_out.reshape(2, -1))
    assert result.dice["min"] == pytest.approx(2 * 0.5 / 1.5)
    assert result.decisions == {"framing verdict": [2, 2]}  # still one lesion
    assert [d["image"] for d in result.disagreements] == ["b.jpg"]


def test_the_runtime_spec_pins_what_was_verified():
    spec = RuntimeSpec()
    assert spec.qemu_package.startswith("qemu-user:amd64=1:10.")  # 7.2 crashes LiteRT
    assert "arch=arm64,amd64" in spec.sources() and "-backports" in spec.sources()
    assert len(spec.constraints_sha256) == 64


def test_outputs_are_kept_by_network_not_by_packed_files(tmp_path: Path):
    model = read_model_file(SHIPPED[3])
    network = network_bytes(model)
    assert len(network) < len(model) and network[4:8] == b"TFL3"
    repacked = tmp_path / "repacked.zip"
    with zipfile.ZipFile(repacked, "w") as archive:
        archive.writestr("lesion_segmenter.json", "{}")
    images = ["0" * 64]
    key = outputs_key(model, images, "max")
    assert outputs_key(network + repacked.read_bytes(), images, "max") == key  # a new card
    changed = bytearray(model)
    changed[len(network) // 2] ^= 1
    assert outputs_key(bytes(changed), images, "max") != key  # another network
    assert outputs_key(model, images, "cortex-a53") != key  # another core
    assert outputs_key(model, ["1" * 64], "max") != key  # other images


def test_a_stale_arm_report_is_not_shipped(tmp_path: Path):
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copyfile(SHIPPED[0], folder / SHIPPED[0].name)
    (folder / "verification.json").write_text(json.dumps({"passed": True, "failures": []}))
    report = {"files": [{"file": SHIPPED[0].name, "sha256": "0" * 64}]}
    (folder / f"{REPORT_STEM}.json").write_text(json.dumps(report))
    with pytest.raises(ShipError, match="changed since the ARM report"):
        check_export(folder)


def test_models_holds_the_arm_report_of_every_shipped_file_on_three_cores():
    report = json.loads((MODELS / f"{REPORT_STEM}.json").read_text())
    measured = {entry["file"]: set(entry["cores"]) for entry in report["files"]}
    assert measured == {p.relative_to(MODELS).as_posix(): ARM_CORES for p in SHIPPED}
    assert report["same_runtime_versions"] is True
    check_export(MODELS)  # and it describes these very bytes


@pytest.mark.slow
def test_shipped_files_on_emulated_arm_agree_with_x86_on_the_samples(arm_runtime, tmp_path):
    """The CI check: all shipped files, the samples, two cores (one without dot product)."""
    argv = [*map(str, SHIPPED), "--cpus", "cortex-a53,max", "--val-images", "0", "--jobs", "2"]
    assert arm.main([*argv, "--cache", str(tmp_path / "cache"), "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / f"{REPORT_STEM}.json").read_text())
    assert report["same_runtime_versions"] and report["images"]["total"] == 14
    assert report["runtimes"]["cortex-a53"]["machine"] == "aarch64"
    assert "asimddp" not in report["runtimes"]["cortex-a53"]["cpu"]["features"]
    assert "i8mm" in report["runtimes"]["max"]["cpu"]["features"]
    for entry in report["files"]:
        for cpu, core in entry["cores"].items():
            where = f"{entry['file']} on {cpu}"
            assert core["decoded_identical"] == 14, where
            assert all(agree == total for agree, total in core["decisions"].values()), where
            # The full run's bounds (docs/benchmarks.md): 4 steps (ensemble), 1.3e-5 (gate).
            bound = 1e-4 if entry["output"]["dtype"] == "float32" else 4
            assert core["max_steps"] <= bound, where
            if core["dice"]:
                assert core["dice"]["min"] >= 0.99, where
