"""demo_server.serving: waitress's own errors as JSON, no "100 Continue" for a refused body,
slow clients cut off at their deadline, and the graceful drain (issue 33)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from demo_server import create_app, serving
from demo_server.attack import (
    classify_head,
    free_port,
    point_six_phase,
    send,
    shutdown_phase,
    slow_sockets_phase,
    start_server,
)
from demo_server.config import ServerConfig
from demo_server.loadtest import multipart
from demo_server.serving import ConnectionLimits, waitress_options

REPO = Path(__file__).resolve().parents[2]
LIMITS = ConnectionLimits(header_timeout_s=1.0, request_timeout_s=2.0, drain_s=3.0)


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (170, 120, 100)).save(out, "JPEG")
    return out.getvalue()


class Live:
    """The app under demo_server.serving on 127.0.0.1 and a free port, on a thread."""

    def __init__(
        self, model_path: Path, limits: ConnectionLimits = LIMITS, max_bytes: int = 200_000
    ) -> None:
        config = ServerConfig(
            model_path=model_path, max_request_bytes=max_bytes, lesion_gate_path=None
        )
        app = create_app(config.flask_config())
        options = waitress_options(config, threads=4, limits=limits)
        self.server, socket_map = serving.create(app, "127.0.0.1", 0, options)
        self.port = self.server.effective_port
        self.stop = threading.Event()
        self.drain: serving.Drain | None = None

        def run() -> None:
            self.drain = serving.run(self.server, socket_map, self.stop, limits)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)


@pytest.fixture()
def live(demo_model_path):
    server = Live(demo_model_path)
    yield server
    server.close()


def status_of(sock: socket.socket) -> int:
    return int(sock.recv(100).split(b" ", 2)[1])


# --- waitress's own answers ---------------------------------------------------------------------


def test_waitress_errors_are_json_with_the_security_headers(live):
    answer = send(live.port, "GET", "/healthz", headers={"X-Big": "a" * 70_000})
    status, headers, body = answer.status, answer.headers, answer.body
    assert status == 431
    assert headers["Content-Type"] == "application/json"
    assert "Content-Security-Policy" in headers and headers["X-Content-Type-Options"] == "nosniff"
    assert json.loads(body)["error"]["code"] == "headers_too_large"
    answer = send(live.port, "POST", "/api/v1/classify", b"\xff" * 300_000)
    assert answer.status == 413 and "Content-Security-Policy" in answer.headers
    assert "200,000 bytes" in json.loads(answer.body)["error"]["message"]


def test_a_body_over_the_limit_is_refused_before_it_is_sent(live):
    with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: 23000000\r\n\r\n"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in answer


def test_point_six_through_the_real_server(demo_model_path):
    live = Live(demo_model_path, max_bytes=ServerConfig().max_request_bytes)
    report = point_six_phase(live.port, jpeg())
    live.close()
    assert report["two_images"]["error"] == "several_images"
    assert report["text_field_600kb"]["error"] == "form_too_large"
    assert report["form_1100_parts"]["error"] == "form_too_large"
    assert report["unknown_model_30kb"]["answer_bytes"] < 1000
    assert report["expect_100_continue_23mb"]["first_line"].startswith("HTTP/1.1 413")
    assert report["header_70kb"]["json"] and report["header_70kb"]["csp"]
    assert report["double_slash_evil_host"]["status"] == 404
    assert report["double_slash_evil_host"]["location"] is None


# --- slow clients ---------------------------------------------------------------------------------


@pytest.mark.slow  # waits out real sockets: seconds
def test_slow_sockets_do_not_lock_others_out_and_are_cut_off(live):
    result: dict = {}
    slow = threading.Thread(
        target=lambda: result.update(slow_sockets_phase(live.port, count=150, seconds=2.5))
    )
    slow.start()
    time.sleep(0.5)  # all 150 connected, past waitress's default limit of 100
    start = time.monotonic()
    assert send(live.port, "GET", "/healthz").status == 200
    assert time.monotonic() - start < 5
    slow.join(10)
    assert result["opened"] == 150
    assert result["closed_by_server"] == 150  # headers not done within header_timeout_s


@pytest.mark.slow  # waits out a request deadline: seconds
def test_a_slow_body_is_cut_off_at_the_request_deadline(live):
    body, content_type = multipart(jpeg())
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(classify_head(body, content_type) + body[:100])
        start = time.monotonic()
        assert sock.recv(100) == b""  # closed by the server
    assert 1.5 < time.monotonic() - start < 5


# --- shutdown -------------------------------------------------------------------------------


def test_the_drain_finishes_requests_in_flight_and_refuses_new_ones(demo_model_path):
    live = Live(demo_model_path)
    body, content_type = multipart(jpeg())
    sockets = [socket.create_connection(("127.0.0.1", live.port), timeout=10) for _ in range(3)]
    for sock in sockets:
        sock.sendall(classify_head(body, content_type) + body[:1000])
    idle = socket.create_connection(("127.0.0.1", live.port), timeout=10)  # no request yet
    time.sleep(0.3)
    live.stop.set()
    time.sleep(0.5)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", live.port), timeout=2)
    for sock in sockets:
        sock.sendall(body[1000:])
        assert status_of(sock) == 200
        sock.close()
    live.thread.join(10)
    assert not live.thread.is_alive()
    assert live.drain.in_flight == 3 and live.drain.unfinished == 0
    assert idle.recv(10) == b""  # an idle connection is closed, not waited for
    idle.close()


def test_the_drain_is_bounded(demo_model_path):
    live = Live(demo_model_path, ConnectionLimits(drain_s=0.5))
    body, content_type = multipart(jpeg())
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(classify_head(body, content_type))  # the body never comes
        time.sleep(0.3)
        start = time.monotonic()
        live.stop.set()
        live.thread.join(10)
    assert time.monotonic() - start < 2
    assert live.drain.in_flight == 1 and live.drain.unfinished == 1


@pytest.mark.slow  # a server process: a few seconds
def test_sigterm_with_eight_requests_in_flight_answers_them_and_exits_zero(
    demo_model_path, tmp_path
):
    args = ["--model", str(demo_model_path), "--no-lesion-gate", "--no-lesion-segmenter"]
    with (tmp_path / "server.log").open("w+") as log:
        process, port = start_server([*args, "--more-models", ""], log)
        report = shutdown_phase(process, port, jpeg())
        log.seek(0)
        lines = log.read().splitlines()
    assert report["statuses"] == ["200"] * 8
    assert report["exit_status"] == 0 and report["exit_s"] < 10
    assert report["new_connection_after_signal"] == "error:ConnectionRefusedError"
    assert "SIGTERM: stopped accepting; 8 request(s) in flight, 8 finished, 0 cut off" in lines[-1]
    assert not any("Traceback" in line for line in lines)


@pytest.mark.slow  # a server process: a few seconds
def test_sigint_drains_too(demo_model_path):
    port = str(free_port())
    process = subprocess.Popen(
        [sys.executable, "-m", "demo_server", "--model", str(demo_model_path), "--port", port,
         "--no-lesion-gate", "--no-lesion-segmenter", "--more-models", ""],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    with process.stderr:
        while "Serving" not in process.stderr.readline():
            assert process.poll() is None
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
        assert "SIGINT: stopped accepting" in process.stderr.read()
