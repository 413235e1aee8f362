"""The CLI, a real waitress server on loopback (demo_server.serving), and the bounded load
tester."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from demo_server import create_app, serving
from demo_server.__main__ import build_parser, main, waitress_options
from demo_server.config import ServerConfig
from demo_server.loadtest import format_report, is_loopback, run_load
from demo_server.loadtest import main as loadtest_main

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (170, 120, 100)).save(out, "JPEG")
    return out.getvalue()


# --- argument errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/nonexistent/model.tflite"], "model file not found"),
        (["--port", "http"], "not a port number"),
        (["--port", "70000"], "port must be 1-65535"),
        (["--port", "0"], "port must be 1-65535"),
        (["--threads", "0"], "must be positive"),
        (["--unsure-below", "1.5"], "at most 1"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_are_usage_errors(args, message, capsys, demo_model_path):
    argv = args if args[0] == "--model" else ["--model", str(demo_model_path), *args]
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err


def test_unusable_model_file_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with pytest.raises(SystemExit) as excinfo:
        main(["--model", str(bad), "--port", "8123"])
    assert excinfo.value.code == 2 and "LiteRT cannot load" in capsys.readouterr().err


def test_defaults_bind_loopback_and_the_repo_model():
    args = build_parser().parse_args([])
    assert args.host == "127.0.0.1" and args.port == 8000
    assert args.model == REPO / "models" / "skin_lesion_int8_mixed.tflite"
    gate = REPO / "models" / "lesion_gate.tflite"
    assert args.lesion_gate == (gate if gate.is_file() else None)


def test_lesion_gate_options(tmp_path):
    parser = build_parser()
    assert parser.parse_args(["--no-lesion-gate"]).lesion_gate is None
    assert parser.parse_args(["--lesion-gate", str(tmp_path / "g.tflite")]).lesion_gate == (
        tmp_path / "g.tflite"
    )


@pytest.mark.parametrize(
    ("gate_args", "message"),
    [
        (["--lesion-gate", "/nonexistent/gate.tflite"], "lesion gate file not found"),
        (["--lesion-gate", "a.tflite", "--no-lesion-gate"], "not allowed with argument"),
    ],
)
def test_bad_lesion_gate_arguments_are_usage_errors(gate_args, message, capsys, demo_model_path):
    with pytest.raises(SystemExit) as excinfo:
        main(["--model", str(demo_model_path), *gate_args])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a model", "lesion_gate.json"), (None, "lesion_gate.json")],
)
def test_unusable_lesion_gate_is_a_usage_error(tmp_path, capsys, demo_model_path, content, message):
    # A file that is no model at all, and a real .tflite that is not a gate (the classifier).
    bad = tmp_path / "gate.tflite"
    bad.write_bytes(content if content is not None else demo_model_path.read_bytes())
    with pytest.raises(SystemExit) as excinfo:
        main(["--model", str(demo_model_path), "--lesion-gate", str(bad), "--port", "8123"])
    err = capsys.readouterr().err
    assert excinfo.value.code == 2 and "lesion gate" in err and message in err


# --- a real waitress server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def live_server(demo_model_path, demo_samples_dir):
    """The app under waitress on 127.0.0.1 and a free port, in a background thread."""
    config = ServerConfig(
        model_path=demo_model_path,
        samples_dir=demo_samples_dir,
        max_request_bytes=200_000,
        interpreters=4,
        lesion_gate_path=None,
    )
    app = create_app(config.flask_config())
    server, socket_map = serving.create(app, "127.0.0.1", 0, waitress_options(config, threads=4))
    stop = threading.Event()
    thread = threading.Thread(target=serving.run, args=(server, socket_map, stop), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}", server.effective_port
    stop.set()
    thread.join(15)


def request(port: int, method: str, path: str, body: bytes | None = None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_live_server_classifies_over_http(live_server):
    _, port = live_server
    status, headers, body = request(
        port, "POST", "/api/v1/classify", jpeg(), {"Content-Type": "image/jpeg"}
    )
    assert status == 200 and json.loads(body)["top"]["code"]
    assert headers["Server"] == "demo_server"
    assert "Content-Security-Policy" in headers


def test_live_server_answers_oversized_bodies_with_413(live_server):
    _, port = live_server
    status, headers, body = request(
        port, "POST", "/api/v1/classify", b"\xff" * 300_000, {"Content-Type": "image/jpeg"}
    )
    assert status == 413
    assert json.loads(body)["error"]["code"] == "request_too_large"
    # Past twice the limit waitress refuses the body itself, still with 413.
    status, _, _ = request(
        port, "POST", "/api/v1/classify", b"\xff" * 500_000, {"Content-Type": "image/jpeg"}
    )
    assert status == 413
    assert request(port, "GET", "/healthz")[0] == 200


def test_loadtest_against_live_server(live_server):
    url, _ = live_server
    report = run_load(url, concurrency=4, duration_s=3.0, max_requests=60, image=jpeg())
    assert report.requests == 60
    assert report.status_counts == {"200": 60}
    assert report.latency_ms["p50"] <= report.latency_ms["p99"]
    assert report.server_rss_bytes_after > 1_000_000
    assert "req/s" in format_report(report)


def test_loadtest_stops_on_time(live_server):
    url, _ = live_server
    start = time.monotonic()
    report = run_load(url, concurrency=2, duration_s=0.5, max_requests=100_000)
    assert time.monotonic() - start < 5
    assert 0 < report.requests < 100_000


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1:8000", "http://example.com", "https://127.0.0.1:1", "http://192.168.1.2"],
)
def test_loadtest_refuses_non_loopback(url, capsys):
    with pytest.raises(ValueError, match="loopback"):
        run_load(url, concurrency=1, duration_s=1)
    with pytest.raises(SystemExit):
        loadtest_main(["--url", url, "--duration", "1"])
    assert "loopback" in capsys.readouterr().err


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("127.8.9.10") and is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.1.1") and not is_loopback("host")


@pytest.mark.slow  # two processes, a few seconds
def test_python_dash_m_demo_server_serves(demo_model_path):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "demo_server",
            "--model",
            str(demo_model_path),
            "--port",
            str(port),
            "--no-lesion-gate",
        ],  # fmt: skip
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, body = request(port, "GET", "/healthz")
                break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        assert status == 200 and json.loads(body)["rss_bytes"] > 0
        out = subprocess.run(
            [
                sys.executable, "-m", "demo_server.loadtest", "--url", f"http://127.0.0.1:{port}",
                "--concurrency", "2", "--duration", "2", "--max-requests", "20", "--json",
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["status_counts"] == {"200": 20}
    finally:
        process.terminate()
        process.wait(10)


def test_waitress_keeps_every_accepted_body_in_memory():
    config = ServerConfig()
    options = waitress_options(config, threads=3)
    # Waitress spools bodies over inbuf_overflow to a temporary file; none may be that large.
    assert options["inbuf_overflow"] > options["max_request_body_size"]
    assert options["max_request_body_size"] >= config.max_request_bytes
    assert options["threads"] == 3
