"""gzip for the large files the page downloads: the runtime's WebAssembly and JavaScript and
the models, compressed once into a cache bounded in bytes, sent only to clients that accept
gzip, with the caching and security headers of the plain file."""

from __future__ import annotations

import gzip
import hashlib
import os

import numpy as np
import pytest
from test_ondevice_routes import VERSION, app_for, fake_web, page_config

from demo_server.compression import GzipCache

WASM = f"/ondevice/lib/{VERSION}/core/wasm/litert_wasm_internal.wasm"
# Compressible like a real WebAssembly build: repeated code with some variety.
WASM_BYTES = b"\0asm\1\0\0\0" + bytes(range(256)) * 400 + bytes(np.arange(50_000) % 7)


@pytest.fixture()
def web(tmp_path):
    folder = fake_web(tmp_path / "web")
    (folder / "node_modules/@litertjs/core/wasm/litert_wasm_internal.wasm").write_bytes(WASM_BYTES)
    return folder


def client_for(demo_model_path, demo_samples_dir, web, **config):
    return app_for(demo_model_path, demo_samples_dir, web, **config).test_client()


def test_a_client_that_accepts_gzip_gets_the_webassembly_compressed(
    demo_model_path, demo_samples_dir, web
):
    client = client_for(demo_model_path, demo_samples_dir, web)
    response = client.get(WASM, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert len(response.data) < len(WASM_BYTES) / 4
    assert gzip.decompress(response.data) == WASM_BYTES
    assert response.mimetype == "application/wasm"
    assert "Accept-Encoding" in response.headers["Vary"]
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    again = client.get(
        WASM, headers={"If-None-Match": response.headers["ETag"], "Accept-Encoding": "gzip"}
    )
    assert again.status_code == 304


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Accept-Encoding": "identity"},
        {"Accept-Encoding": "gzip;q=0"},
        {"Accept-Encoding": "gzip", "Range": "bytes=0-99"},
    ],
    ids=["no-header", "identity", "gzip-refused", "range"],
)
def test_other_clients_get_the_file_as_it_is(demo_model_path, demo_samples_dir, web, headers):
    client = client_for(demo_model_path, demo_samples_dir, web)
    response = client.get(WASM, headers=headers)
    assert "Content-Encoding" not in response.headers
    assert "Accept-Encoding" in response.headers["Vary"]
    want = WASM_BYTES[:100] if "Range" in headers else WASM_BYTES
    assert response.data == want


def test_no_cache_no_compression(demo_model_path, demo_samples_dir, web):
    client = client_for(demo_model_path, demo_samples_dir, web, GZIP_CACHE_BYTES=0)
    response = client.get(WASM, headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in response.headers and response.data == WASM_BYTES


def test_the_model_files_are_compressed_when_it_pays(
    demo_model_path, demo_samples_dir, web, tmp_path
):
    """A model that compresses (zeros in its packed files' place) goes compressed, one that
    does not (random weights, as int8 weights nearly are) as it is; both byte for byte."""
    client = client_for(demo_model_path, demo_samples_dir, web)
    entry = page_config(client.get("/").get_data(as_text=True))["classifier"]
    response = client.get(entry["url"], headers={"Accept-Encoding": "gzip"})
    body = response.data
    if response.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    assert hashlib.sha256(body).hexdigest() == entry["sha256"]
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_the_cache_keeps_within_its_bound_and_follows_the_file(tmp_path):
    files = []
    for i in range(3):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(bytes([i]) * 200_000)  # ~200 bytes once compressed
        files.append(path)
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(50_000))
    cache = GzipCache(max_bytes=600)
    for path in files:
        assert gzip.decompress(cache.get(path)) == path.read_bytes()
    assert cache.used <= 600 and len(cache.entries) < 3  # the oldest left
    assert cache.get(noise) is None  # random bytes: not worth it, sent as they are
    files[2].write_bytes(b"changed " * 1000)
    assert gzip.decompress(cache.get(files[2])) == b"changed " * 1000
    small = GzipCache(max_bytes=100)
    assert small.get(files[0]) is None and small.used == 0  # larger than the whole cache
