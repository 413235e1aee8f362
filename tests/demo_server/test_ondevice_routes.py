"""The server's side of on-device mode, without a browser: the page's configuration, its
security headers, and the routes that serve the runtime, the models and the service worker.

A fake web/ folder stands in for `npm ci --prefix web`, so these run without Node.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from contract.bench_report import BenchConfig, BenchReport, BenchRow, Machine, write_bench_report
from demo_server import create_app
from demo_server.segmenter import MESSAGES as LESION_MESSAGES

VERSION = "9.9.9"
SEGMENTER_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "segmenter"


def fake_web(folder: Path, installed: str = VERSION) -> Path:
    """package.json pinning VERSION and node_modules holding `installed`."""
    (folder / "node_modules/@litertjs/core/dist").mkdir(parents=True)
    (folder / "node_modules/@litertjs/core/wasm").mkdir()
    (folder / "node_modules/@litertjs/wasm-utils/dist").mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"dependencies": {"@litertjs/core": VERSION}}))
    core = folder / "node_modules/@litertjs/core"
    (core / "package.json").write_text(json.dumps({"version": installed}))
    (core / "dist/index.js").write_text("export const core = 1;\n")
    (core / "wasm/litert_wasm_internal.wasm").write_bytes(b"\0asm\1\0\0\0")
    (core / "wasm/litert_wasm_internal.js").write_text("var ModuleFactory;\n")
    (folder / "node_modules/@litertjs/wasm-utils/dist/index.js").write_text("export {};\n")
    return folder


def app_for(model: Path, samples: Path, web: Path, **config):
    return create_app(
        {
            "TESTING": True,
            "MODEL_PATH": model,
            "SAMPLES_DIR": samples,
            "INTERPRETERS": 1,
            "LESION_GATE_PATH": None,
            "WEB_DIR": web,
            **config,
        }
    )


@pytest.fixture()
def web(tmp_path) -> Path:
    return fake_web(tmp_path / "web")


@pytest.fixture()
def client(demo_model_path, demo_samples_dir, web):
    return app_for(demo_model_path, demo_samples_dir, web).test_client()


def page_config(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="ondevice-config">(.*?)</script>', html)
    assert found, "the page embeds its on-device configuration"
    return json.loads(found.group(1))


def test_page_offers_on_device_mode_with_its_runtime(client, demo_model_path):
    response = client.get("/")
    html = response.get_data(as_text=True)
    config = page_config(html)
    assert config["available"] is True
    assert config["runtime"]["version"] == VERSION
    assert config["runtime"]["wasm"] == f"/ondevice/lib/{VERSION}/core/wasm/"
    sha = hashlib.sha256(demo_model_path.read_bytes()).hexdigest()
    assert config["classifier"]["url"] == f"/ondevice/models/{sha[:16]}/classifier.tflite"
    assert config["lesion_gate"] is None
    assert config["unsure_below"] == 0.5
    assert config["messages"]["triage"]["see_dermatologist"]
    assert "/samples/mel_1.jpg" in config["shell"] and "/static/screening.mjs" in config["shell"]
    importmap = re.search(r'<script type="importmap">(.*?)</script>', html).group(1)
    assert json.loads(importmap)["imports"]["@litertjs/core"] == (
        f"/ondevice/lib/{VERSION}/core/dist/index.js"
    )
    # WebAssembly may compile, and the one inline script is allowed by its hash only.
    csp = response.headers["Content-Security-Policy"]
    digest = base64.b64encode(hashlib.sha256(importmap.encode()).digest()).decode()
    script_src = next(d for d in csp.split("; ") if d.startswith("script-src"))
    assert script_src == f"script-src 'self' 'wasm-unsafe-eval' 'sha256-{digest}'"
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.parametrize("installed", [None, "1.0.0"])
def test_without_the_runtime_the_page_says_why_and_uses_the_server(
    demo_model_path, demo_samples_dir, tmp_path, installed
):
    web = fake_web(tmp_path / "web", installed) if installed else tmp_path / "empty"
    client = app_for(demo_model_path, demo_samples_dir, web).test_client()
    response = client.get("/")
    html = response.get_data(as_text=True)
    config = page_config(html)
    assert config["available"] is False
    assert "npm ci --prefix web" in config["reason"] or "pins 9.9.9" in config["reason"]
    assert 'type="importmap"' not in html
    assert "wasm-unsafe-eval" not in response.headers["Content-Security-Policy"]
    assert client.get(f"/ondevice/lib/{VERSION}/core/dist/index.js").status_code == 404


def test_runtime_files_come_from_the_installed_package_only(client, web):
    wasm = client.get(f"/ondevice/lib/{VERSION}/core/wasm/litert_wasm_internal.wasm")
    assert wasm.status_code == 200
    assert wasm.mimetype == "application/wasm"
    assert (
        wasm.data
        == (web / "node_modules/@litertjs/core/wasm/litert_wasm_internal.wasm").read_bytes()
    )
    assert "immutable" in wasm.headers["Cache-Control"]
    assert wasm.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    module = client.get(f"/ondevice/lib/{VERSION}/wasm-utils/dist/index.js")
    assert module.status_code == 200 and module.mimetype == "text/javascript"
    for path in (
        "/ondevice/lib/1.0.0/core/dist/index.js",  # another version
        f"/ondevice/lib/{VERSION}/core/package.json",  # not a served file
        f"/ondevice/lib/{VERSION}/core/wasm/../package.json",
        f"/ondevice/lib/{VERSION}/core/wasm/sub/x.js",
        f"/ondevice/lib/{VERSION}/core/wasm/missing.wasm",
    ):
        assert client.get(path).status_code == 404, path


def test_the_model_files_are_the_servers_byte_for_byte(
    demo_model_path, demo_samples_dir, web, tmp_path
):
    gate = Path(__file__).resolve().parents[2] / "models" / "lesion_gate.tflite"
    if not gate.is_file():
        pytest.skip("models/lesion_gate.tflite is not here")
    client = app_for(demo_model_path, demo_samples_dir, web, LESION_GATE_PATH=gate).test_client()
    config = page_config(client.get("/").get_data(as_text=True))
    for entry, path in ((config["classifier"], demo_model_path), (config["lesion_gate"], gate)):
        response = client.get(entry["url"])
        assert response.status_code == 200
        assert response.data == path.read_bytes()
        assert entry["sha256"] == hashlib.sha256(response.data).hexdigest()
        assert "immutable" in response.headers["Cache-Control"]
    assert client.get("/ondevice/models/0000000000000000/classifier.tflite").status_code == 404
    assert client.get(config["classifier"]["url"].replace("classifier", "other")).status_code == 404


def test_no_gate_no_gate_file(client):
    config = page_config(client.get("/").get_data(as_text=True))
    digest = config["classifier"]["url"].split("/")[3]
    assert client.get(f"/ondevice/models/{digest}/lesion_gate.tflite").status_code == 404


def test_service_worker_is_served_from_the_root(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    text = response.get_data(as_text=True)
    assert "api/" in text and "caches.open" in text


def test_native_bench_figures_come_from_bench_json(demo_samples_dir, web, tmp_path):
    model = tmp_path / "models" / "tiny.tflite"
    model.parent.mkdir()
    source = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_uint8.tflite"
    model.write_bytes(source.read_bytes())
    (model.parent / "bench").mkdir()

    def row(name: str, backend: str, threads: int, p50: float, p90: float) -> BenchRow:
        times = (5.0, 2.0, None, p50, p50, p90, p90, 1.0)  # init, first, warm-up, avg, p50...
        return BenchRow(name, 1.0, backend, threads, 100, *times, None)

    rows = (
        row("tiny.tflite", "xnnpack", 1, 1.5, 2.0),
        row("tiny.tflite", "builtin", 1, 9.0, 9.5),
        row("other.tflite", "xnnpack", 2, 0.1, 1.0),
    )
    machine = Machine(platform="Linux-x86_64", processor="", python="3.11")
    report = BenchReport(machine=machine, config=BenchConfig(runs=100), rows=rows)
    write_bench_report(model.parent / "bench", report)
    other = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_float32.tflite"
    client = app_for(model, demo_samples_dir, web, MORE_MODEL_PATHS=(other,)).test_client()
    config = page_config(client.get("/").get_data(as_text=True))
    # Keyed by the file's SHA-256 (the page finds a picked file's too); none for a file that
    # export.bench did not measure.
    assert config["native_benches"] == {
        hashlib.sha256(model.read_bytes()).hexdigest(): {
            "model": "tiny.tflite",
            "rows": [{"threads": 1, "p50_ms": 1.5, "p90_ms": 2.0}],
            "machine": "Linux-x86_64",
            "runs": 100,
        }
    }


def test_the_segmenter_runs_on_the_device_too(demo_model_path, demo_samples_dir, web):
    """With a lesion segmenter the page stays on the device: it gets the very file, its modules
    and the server's wording for "no spot" and "several spots"."""
    segmenter = SEGMENTER_FIXTURES / "tiny_segmenter.tflite"
    app = app_for(demo_model_path, demo_samples_dir, web, SEGMENTER_PATH=segmenter)
    client = app.test_client()
    config = page_config(client.get("/").get_data(as_text=True))
    assert config["available"] is True
    entry = config["lesion_segmenter"]
    sha = hashlib.sha256(segmenter.read_bytes()).hexdigest()
    assert entry["url"] == f"/ondevice/models/{sha[:16]}/lesion_segmenter.tflite"
    assert (entry["sha256"], entry["size_bytes"]) == (sha, segmenter.stat().st_size)
    response = client.get(entry["url"])
    assert response.status_code == 200 and response.data == segmenter.read_bytes()
    assert "immutable" in response.headers["Cache-Control"]
    assert config["messages"]["lesion"] == LESION_MESSAGES
    for module in ("framing.mjs", "segmentation.mjs", "rounding.mjs"):
        assert f"/static/{module}" in config["shell"]  # kept for offline use
        assert client.get(f"/static/{module}").status_code == 200
    other = entry["url"].replace(sha[:16], "0" * 16)
    assert client.get(other).status_code == 404


def test_no_segmenter_no_segmenter_file(client):
    config = page_config(client.get("/").get_data(as_text=True))
    assert config["lesion_segmenter"] is None
    digest = config["classifier"]["url"].split("/")[3]
    assert client.get(f"/ondevice/models/{digest}/lesion_segmenter.tflite").status_code == 404
