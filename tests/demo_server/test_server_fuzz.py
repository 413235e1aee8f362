"""Property-based fuzzing of uploads: whatever the bytes, the answer is never a 5xx."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("hypothesis", reason="hypothesis is not installed (a [test] extra)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
OK_OR_CLIENT_ERROR = {200, 400, 413, 415, 422}


def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    kwargs = {"exif": exif, "quality": 85} if fmt == "JPEG" else {}
    Image.fromarray(pixels).save(out, format=fmt, **kwargs)
    return out.getvalue()


SEEDS = {fmt: _encoded(fmt) for fmt in ("JPEG", "PNG", "WEBP")}


@pytest.fixture(scope="module")
def fuzz_client(demo_model_path):
    from demo_server import create_app

    app = create_app({"MODEL_PATH": demo_model_path, "INTERPRETERS": 1, "LESION_GATE_PATH": None})
    return app.test_client()


def _post(client, data: bytes, multipart: bool):
    if multipart:
        return client.post("/api/v1/classify", data={"image": (io.BytesIO(data), "x.jpg")})
    return client.post("/api/v1/classify", data=data, content_type="application/octet-stream")


def _check(response) -> None:
    assert response.status_code in OK_OR_CLIENT_ERROR, response.get_data(as_text=True)
    body = response.get_json()
    assert ("scores" in body) if response.status_code == 200 else ("error" in body)


@FUZZ
@given(data=st.binary(max_size=4096), multipart=st.booleans())
def test_random_bytes(fuzz_client, data, multipart):
    _check(_post(fuzz_client, data, multipart))


@FUZZ
@given(fmt=st.sampled_from(sorted(SEEDS)), cut=st.floats(0.0, 1.0))
def test_truncated_images(fuzz_client, fmt, cut):
    seed = SEEDS[fmt]
    _check(_post(fuzz_client, seed[: int(len(seed) * cut)], multipart=True))


@FUZZ
@given(
    fmt=st.sampled_from(sorted(SEEDS)),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 7)), max_size=8),
)
def test_bit_flipped_images(fuzz_client, fmt, flips):
    data = bytearray(SEEDS[fmt])
    for where, bit in flips:
        data[int(where * len(data))] ^= 1 << bit
    _check(_post(fuzz_client, bytes(data), multipart=False))


@FUZZ
@given(
    fmt=st.sampled_from(sorted(SEEDS)),
    at=st.floats(0.0, 1.0),
    junk=st.binary(min_size=1, max_size=64),
)
def test_spliced_images_on_explain(fuzz_client, fmt, at, junk):
    seed = SEEDS[fmt]
    where = int(len(seed) * at)
    data = seed[:where] + junk + seed[where:]
    response = fuzz_client.post("/api/v1/explain", data={"image": (io.BytesIO(data), "x")})
    assert response.status_code in OK_OR_CLIENT_ERROR
