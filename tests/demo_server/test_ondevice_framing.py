"""The page's segmenter step against the server's, on the same inputs (no browser).

web/contract_harness.mjs runs demo_server/static/segmentation.mjs and framing.mjs in Node: from
a segmenter's raw output tensor to the classify answer's `lesion` field (dequantize, probability
map, components, verdict, box, outline, area fraction, crop), and reading the segmenter file.
Each answer must equal, to the last digit, what the server computes with contract.framing,
contract.segmentation and demo_server.segmenter on the same bytes. Needs Node (>= 20); skipped
without it, except in CI.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from ondevice_support import REPO, run_harness, spec_json
from PIL import Image

from contract.framing import Box, FramingRule, crop, frame
from contract.images import model_input, resize_to_input
from contract.segmentation import SEGMENTER_FILE, probability_map, read_segmenter_info
from contract.tensors import TensorSpec, dequantize_output, quantize_input
from demo_server.segmenter import MESSAGES, lesion_json

FIXTURES = REPO / "tests" / "fixtures" / "segmenter"
SHIPPED = REPO / "models" / "lesion_segmenter.tflite"
OUTPUT = TensorSpec((1, 64, 64, 1), np.dtype("uint8"), 1 / 256, 0)  # as the int8 export's
# Photo sizes (width, height): phone photos either way up, small and odd ones, and one whose
# coordinates fall on exact halves (112 / 224 = 0.5), where rounding to even matters.
SIZES = [(200, 160), (4032, 3024), (3024, 4032), (30, 20), (7, 5), (112, 336), (999, 1001)]
CUSTOM = FramingRule(0.3, 0.0, 0.6, 0.25, 0.5, 12)


def disc(size: int, cy: float, cx: float, radius: float, sharpness: float = 1.5) -> np.ndarray:
    """P(lesion) falling smoothly from 1 inside a disc to 0 outside."""
    yy, xx = np.mgrid[:size, :size]
    distance = np.hypot(yy - cy, xx - cx)
    return 1 / (1 + np.exp(-sharpness * (radius - distance)))


def rect(size: int, top: int, left: int, height: int, width: int) -> np.ndarray:
    p = np.zeros((size, size))
    p[top : top + height, left : left + width] = 1.0
    return p


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Random blobs: coarse noise stretched to the grid (bilinear), around the threshold."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    image = Image.fromarray(coarse, "F").resize((size, size), Image.BILINEAR)
    return np.clip((np.asarray(image) - 0.35) * 2.5, 0, 1)


def maps() -> dict[str, np.ndarray]:
    """P(lesion) maps on the fixture's 64 px grid and a 224 px one (the classifier's size)."""
    rng = np.random.default_rng(8)
    s = 64
    u_shape = rect(s, 10, 10, 30, 6) + rect(s, 10, 30, 30, 6) + rect(s, 36, 10, 6, 26)
    ring = disc(s, 32, 30, 18) - disc(s, 32, 30, 9)
    found = {
        "one blob": disc(s, 30, 25, 12),
        "none": rng.random((s, s)) * 0.4,
        "none but a speck under the minimum area": rect(s, 20, 20, 2, 2),
        "two blobs of similar size": disc(s, 16, 16, 8) + disc(s, 46, 44, 7),
        "blob and a tiny speck": disc(s, 30, 25, 12) + rect(s, 55, 55, 3, 3),
        "blob touching the top border": disc(s, 0, 40, 15),
        "blob in the bottom-right corner": disc(s, 63, 63, 20),
        "ring": ring,
        "U shape (arms joined below)": u_shape,
        "squares touching at a corner": rect(s, 10, 10, 8, 8) + rect(s, 18, 18, 8, 8),
        "two equal squares": rect(s, 40, 5, 9, 9) + rect(s, 10, 40, 9, 9),
        "noise": rng.random((s, s)),
        "everything": np.ones((s, s)),
        "one-pixel line": np.eye(s)[:, ::-1] * (np.arange(s) > 8),
        "one pixel": rect(s, 33, 17, 1, 1),
        "on the threshold": np.where(disc(s, 30, 30, 10) > 0.5, 0.5, 127 / 256),
    }
    for i in range(6):
        found[f"random blobs {i}"] = smooth_noise(rng, s, 4 + i)
    s = 224
    yy, xx = np.mgrid[:s, :s]
    wobble = 50 + 12 * np.sin(7 * np.arctan2(yy - 110, xx - 100))
    found["224: ragged blob"] = (np.hypot(yy - 110, xx - 100) < wobble).astype(float)
    found["224: 392 pixels (an exact tie to 6 digits)"] = rect(s, 100, 60, 14, 28)
    found["224: random blobs"] = smooth_noise(rng, s, 9)
    return found


def quantized(p: np.ndarray) -> np.ndarray:
    """The segmenter's uint8 output for P (steps of 1/256)."""
    return np.clip(np.round(p * 256), 0, 255).astype(np.uint8)


def shipped_outputs() -> dict[str, np.ndarray]:
    """The shipped segmenter's raw outputs on the sample photos (real masks), when it is here."""
    if not SHIPPED.is_file():
        return {}
    interpreter = Interpreter(model_path=str(SHIPPED))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    size = int(inp["shape"][1])
    outputs = {}
    for path in sorted((REPO / "sample_images").glob("*.jpg")):
        pixels = model_input(path.read_bytes(), size)[np.newaxis]
        interpreter.set_tensor(inp["index"], quantize_input(pixels, TensorSpec.from_detail(inp)))
        interpreter.invoke()
        outputs[f"shipped segmenter on {path.name}"] = interpreter.get_tensor(out["index"])[0]
    return outputs


def cases() -> list[dict]:
    """Every map at several photo sizes, under the default rule and a custom one."""
    raw = {name: quantized(p) for name, p in maps().items()} | shipped_outputs()
    found = []
    for i, (name, output) in enumerate(raw.items()):
        spec = dataclasses.replace(OUTPUT, shape=(1, *output.shape[:2], 1))
        for j, rule in enumerate((FramingRule(), CUSTOM)):
            width, height = SIZES[(i + 3 * j) % len(SIZES)]
            found.append(
                {
                    "name": f"{name}, {width}x{height}, rule {j}",
                    "output": base64.b64encode(output.tobytes()).decode(),
                    "spec": spec_json(spec),
                    "image_size": output.shape[0],
                    "width": width,
                    "height": height,
                    "rule": dataclasses.asdict(rule),
                }
            )
    return found


def server_framing(case: dict):
    """The server's steps (demo_server.segmenter) from the same output tensor."""
    raw = np.frombuffer(base64.b64decode(case["output"]), np.dtype(case["spec"]["dtype"]))
    spec = TensorSpec(
        tuple(case["spec"]["shape"]),
        raw.dtype,
        case["spec"]["scale"],
        case["spec"]["zeroPoint"],
    )
    probabilities = probability_map(dequantize_output(raw, spec), case["image_size"])
    return frame(probabilities, case["width"], case["height"], FramingRule(**case["rule"]))


def test_lesion_fields_are_the_servers_to_the_last_digit(tmp_path):
    """Verdict, spots found, box, outline, area fraction and crop, on every map."""
    request = {"framing": cases(), "messages": {"lesion": MESSAGES}}
    answer = run_harness(tmp_path, request)
    verdicts = set()
    for case, js in zip(request["framing"], answer["framing"], strict=True):
        framing = server_framing(case)
        verdicts.add(framing.verdict)
        assert js["lesion"] == lesion_json(framing, cropped=False), case["name"]
        assert js["area_fraction"] == framing.area_fraction, case["name"]
        assert js["crop"] == (framing.crop.as_json() if framing.crop else None), case["name"]
    assert verdicts == {"one", "no_lesion", "several"}


def test_the_crop_the_classifier_sees_is_pillows(tmp_path):
    """framing.mjs's crop then pixels.mjs's resize give the classifier input the server's crop
    and resize give, byte for byte."""
    rng = np.random.default_rng(3)
    boxes = [
        (Box(10, 20, 90, 100), (200, 160)),
        (Box(0, 0, 7, 5), (7, 5)),
        (Box(37, 111, 337, 411), (640, 480)),
        (Box(500, 0, 1001, 501), (1001, 999)),
    ]
    for case in cases():  # the crops the maps above frame, on photos of a few megapixels
        framing = server_framing(case)
        if framing.crop and case["width"] * case["height"] < 2_000_000:
            boxes.append((framing.crop, (case["width"], case["height"])))
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _, (w, h) in boxes]
    request = {
        "crop": [
            {
                "width": w,
                "height": h,
                "pixels": base64.b64encode(image.tobytes()).decode(),
                "box": dataclasses.asdict(box),
                "out_size": 224,
            }
            for (box, (w, h)), image in zip(boxes, images, strict=True)
        ]
    }
    answer = run_harness(tmp_path, request)
    assert len(boxes) > 8
    for (box, _), image, js in zip(boxes, images, answer["crop"], strict=True):
        want = resize_to_input(crop(Image.fromarray(image), box), 224, 224)
        got = np.frombuffer(base64.b64decode(js), np.uint8).reshape(224, 224, 3)
        assert np.array_equal(got, want), box


def repacked(tmp_path: Path, name: str, info: dict) -> Path:
    """The tiny segmenter with another lesion_segmenter.json packed after it (both sides read
    the last zip of a file)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(SEGMENTER_FILE, json.dumps(info))
    path = tmp_path / name
    path.write_bytes((FIXTURES / "tiny_segmenter.tflite").read_bytes() + buffer.getvalue())
    return path


def test_segmenter_files_read_alike(tmp_path):
    """Input size, rule (the defaults where the file is silent) and the crop flag, and the
    tensors, from the same bytes."""
    files = [FIXTURES / "tiny_segmenter.tflite", FIXTURES / "tiny_segmenter_crop.tflite"]
    files += [SHIPPED] if SHIPPED.is_file() else []
    files += [
        repacked(tmp_path, "silent.tflite", {"image_size": 64}),
        repacked(
            tmp_path,
            "partial.tflite",
            {
                "image_size": 64,
                "rule": {"threshold": 0.7, "extra": 1},
                "crop_before_classifying": 1,
            },
        ),
    ]
    answer = run_harness(tmp_path, {"segmenters": [str(p) for p in files]})
    assert answer["framing_rule"] == dataclasses.asdict(FramingRule())
    for path in files:
        info = read_segmenter_info(path.read_bytes())
        interpreter = Interpreter(model_path=str(path))
        js = answer["segmenters"][str(path)]
        assert js["image_size"] == info.image_size, path.name
        assert js["rule"] == dataclasses.asdict(info.rule), path.name
        assert js["crop_before_classifying"] == info.crop_before_classifying, path.name
        assert js["input"] == spec_json(TensorSpec.from_detail(interpreter.get_input_details()[0]))
        assert js["output"] == spec_json(
            TensorSpec.from_detail(interpreter.get_output_details()[0])
        )


@pytest.mark.parametrize("digits", [0, 1, 6])
def test_rounding_is_pythons(tmp_path, digits):
    """rounding.mjs's pythonRound is Python's round, exact ties (to even) included: outline
    coordinates (x.5 * scale, 1 digit), area fractions (n / 224^2, 6 digits), crop sides."""
    rng = np.random.default_rng(digits)
    values = [0.25, 0.75, 2.5, 3.5, 0.0078125, 0.0234375, 1.05, 2.675, 0.125, 1e-7, 0.0]
    values += [-0.25, -2.5, -1.5, 123456.5, 2.0**-30]
    values += [(c + 0.5) * w / 224 for c in range(0, 224, 7) for w in (112, 200, 4032, 7)]
    values += [a / 224**2 for a in range(0, 224**2, 392)] + list(rng.random(200) * 100)
    answer = run_harness(tmp_path, {"round": [[x, digits] for x in values]})
    want = [float(round(x, digits)) for x in values]
    assert answer["round"] == want
