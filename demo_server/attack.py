"""``python -m demo_server.loadtest --attack``: hostile clients against a server it starts itself.

The cases of issue 33, generated here (no large file is committed): a progressive JPEG that
repeats its last scan 1,000 times, a 16-bit greyscale PNG and a lossless WebP of 6300 x 6300,
150 connections that send one header byte every half second, the request shapes of the
issue's point 6, and SIGTERM with 8 requests in flight. The server is `python -m demo_server`
on 127.0.0.1 and a free port (extra arguments are passed to it), so nothing leaves this
machine; every phase is bounded in requests and seconds.

One client sends ordinary classify requests all along; the report gives their latency during
each phase, each hostile upload's status and time (alone, then four at once), the server's
resident memory (before, peak, settled after), and the shutdown drain.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from demo_server.loadtest import multipart, synthetic_jpeg
from demo_server.system import process_rss_bytes

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 30.0
START_TIMEOUT_S = 120.0
HOSTILE_AT_ONCE = 4
SLOW_SOCKETS = 150
SLOW_PHASE_S = 12.0
SLOW_BYTE_EVERY_S = 0.5
IN_FLIGHT = 8
SETTLE_S = 5.0
LOG_LINES = 30  # the server log's last lines in the report (waitress's queue warnings left out)


# --- the hostile files ------------------------------------------------------------------------


def progressive_jpeg_bomb(side: int = 6000, repeats: int = 1000) -> bytes:
    """A flat-colour progressive JPEG whose last scan is repeated `repeats` more times."""
    out = io.BytesIO()
    Image.new("RGB", (side, side), (180, 120, 100)).save(out, "JPEG", progressive=True)
    data = out.getvalue()
    last, end = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    return data[:end] + data[last:end] * repeats + data[end:]


def deep_png(side: int = 6300) -> bytes:
    """A flat 16-bit greyscale PNG (about 90 KB for 40 MP)."""
    out = io.BytesIO()
    Image.new("I;16", (side, side), 1000).save(out, "PNG")
    return out.getvalue()


def lossless_webp(side: int = 6300) -> bytes:
    """A flat lossless WebP (under 2 KB for 40 MP)."""
    out = io.BytesIO()
    Image.new("RGB", (side, side), (120, 90, 80)).save(out, "WEBP", lossless=True)
    return out.getvalue()


HOSTILE_FILES: dict[str, Callable[[], bytes]] = {
    "progressive_jpeg_1000_scans": progressive_jpeg_bomb,
    "png_16bit_6300x6300": deep_png,
    "webp_lossless_6300x6300": lossless_webp,
}


# --- talking to the server ----------------------------------------------------------------------


@dataclass
class Answer:
    status: int | str
    seconds: float
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def send(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT_S,
) -> Answer:
    """One request on its own connection; a connection error is a status string."""
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        data = response.read()
        return Answer(response.status, time.perf_counter() - start, data, dict(response.headers))
    except (OSError, http.client.HTTPException) as error:
        return Answer(f"error:{type(error).__name__}", time.perf_counter() - start)
    finally:
        connection.close()


def upload(port: int, image: bytes, timeout: float = TIMEOUT_S) -> Answer:
    body, content_type = multipart(image)
    return send(port, "POST", "/api/v1/classify", body, {"Content-Type": content_type}, timeout)


def process_rss(pid: int) -> int:
    """Resident bytes of a process (VmRSS); OSError when it cannot be read."""
    rss = process_rss_bytes(pid)
    if rss is None:
        raise OSError(f"no resident memory for process {pid}")
    return rss


class Sampler:
    """The server's resident memory, read every 10 ms on a thread; `peak()` since `reset()`."""

    def __init__(self, pid: int) -> None:
        self._pid, self._peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self._peak = max(self._peak, process_rss(self._pid))
            except OSError:
                return

    def reset(self) -> None:
        self._peak = 0

    def peak(self) -> int:
        return self._peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1)


class Ordinary:
    """One client sending ordinary classify requests back to back; latencies by phase."""

    def __init__(self, port: int, image: bytes) -> None:
        self._port, self._image = port, image
        self._phase = "warm-up"
        self.latencies: dict[str, list[float]] = {}
        self.statuses: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            phase = self._phase
            answer = upload(self._port, self._image)
            self.latencies.setdefault(phase, []).append(answer.seconds * 1000.0)
            counts = self.statuses.setdefault(phase, {})
            counts[str(answer.status)] = counts.get(str(answer.status), 0) + 1
            if answer.status != 200:
                time.sleep(0.05)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._phase = name
        try:
            yield
        finally:
            self._phase = "between"

    def summary(self, phase: str) -> dict[str, object]:
        values = self.latencies.get(phase, [])
        if not values:
            return {"requests": 0}
        p50, p99 = np.percentile(values, [50, 99])
        return {
            "requests": len(values),
            "p50_ms": round(float(p50), 1),
            "p99_ms": round(float(p99), 1),
            "max_ms": round(max(values), 1),
            "statuses": self.statuses.get(phase, {}),
        }

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT_S)


# --- the phases ---------------------------------------------------------------------------------


def hostile_phase(port: int, data: bytes, ordinary_image: bytes) -> dict[str, object]:
    """One upload alone, then HOSTILE_AT_ONCE at once with an ordinary request a second in."""
    alone = upload(port, data)
    answers: list[Answer] = []
    threads = [
        threading.Thread(target=lambda: answers.append(upload(port, data)))
        for _ in range(HOSTILE_AT_ONCE)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    ordinary = upload(port, ordinary_image)
    for thread in threads:
        thread.join(TIMEOUT_S * 2)
    return {
        "bytes": len(data),
        "alone": {"status": alone.status, "s": round(alone.seconds, 2), "error": _code(alone)},
        "at_once_statuses": sorted(str(a.status) for a in answers),
        "at_once_max_s": round(max(a.seconds for a in answers), 2),
        "ordinary_during": {"status": ordinary.status, "s": round(ordinary.seconds, 2)},
    }


def slow_sockets_phase(
    port: int, count: int = SLOW_SOCKETS, seconds: float = SLOW_PHASE_S
) -> dict[str, object]:
    """`count` connections sending one header byte every SLOW_BYTE_EVERY_S for `seconds`."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    sockets, closed_at = [], {}
    start = time.monotonic()
    for _ in range(count):
        try:
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            break
    position = 0
    while time.monotonic() - start < seconds:
        for index, sock in enumerate(sockets):
            if index in closed_at:
                continue
            try:
                sock.sendall(request[position % len(request) : position % len(request) + 1])
            except OSError:
                closed_at[index] = time.monotonic() - start
        position += 1
        time.sleep(SLOW_BYTE_EVERY_S)
    for sock in sockets:
        sock.close()
    return {
        "opened": len(sockets),
        "closed_by_server": len(closed_at),
        "first_closed_s": round(min(closed_at.values()), 1) if closed_at else None,
    }


def point_six_phase(port: int, ordinary_image: bytes) -> dict[str, object]:
    """Two images, and each request shape of point 6: status, error code, and what matters."""
    body, content_type = multipart(ordinary_image)
    boundary = content_type.split("=", 1)[1]
    two = _form(boundary, [("image", ordinary_image, "a.jpg"), ("image", ordinary_image, "b.jpg")])
    big_field = _form(boundary, [("image", ordinary_image, "a.jpg"), ("age", b"1" * 600_000, "")])
    parts = _form(boundary, [("image", ordinary_image, "a.jpg")] + [("x", b"1", "")] * 1100)
    arabic = _form(boundary, [("image", ordinary_image, "a.jpg"), ("age", "٣٠".encode(), "")])
    form = {"Content-Type": content_type}
    out: dict[str, object] = {
        "two_images": _brief(send(port, "POST", "/api/v1/classify", two, form)),
        "text_field_600kb": _brief(send(port, "POST", "/api/v1/classify", big_field, form)),
        "form_1100_parts": _brief(send(port, "POST", "/api/v1/classify", parts, form)),
        "age_arabic_indic_30": _brief(send(port, "POST", "/api/v1/classify", arabic, form)),
    }
    # 30 KB: the whole request line stays under the 64 KB header limit (past it, a 431).
    long_model = send(port, "POST", "/api/v1/classify?model=" + "m" * 30_000, body, form)
    out["unknown_model_30kb"] = {**_brief(long_model), "answer_bytes": len(long_model.body)}
    out["expect_100_continue_23mb"] = _expect_continue(port, 23 * 2**20)
    big_header = send(port, "GET", "/healthz", None, {"X-Big": "a" * 70_000})
    out["header_70kb"] = {
        **_brief(big_header),
        "json": big_header.headers.get("Content-Type") == "application/json",
        "csp": "Content-Security-Policy" in big_header.headers,
    }
    evil = send(port, "GET", "//static//x", None, {"Host": "evil.example"})
    out["double_slash_evil_host"] = {
        **_brief(evil),
        "location": evil.headers.get("Location"),
    }
    return out


def _expect_continue(port: int, declared: int) -> dict[str, object]:
    """Headers declaring `declared` bytes with Expect: 100-continue: what comes back first."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: image/jpeg\r\nExpect: 100-continue\r\n"
            + f"Content-Length: {declared}\r\n\r\n".encode()
        )
        first = sock.recv(200).split(b"\r\n", 1)[0].decode(errors="replace")
    return {"first_line": first, "s": round(time.perf_counter() - start, 2), "body_sent": 0}


def shutdown_phase(
    process: subprocess.Popen, port: int, image: bytes, count: int = IN_FLIGHT
) -> dict[str, object]:
    """`count` requests with their headers and half their body sent, SIGTERM, the other halves:
    their statuses, whether new connections are refused, the exit status and time."""
    body, content_type = multipart(image)
    head = classify_head(body, content_type)
    half = len(body) // 2
    sockets = [
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) for _ in range(count)
    ]
    for sock in sockets:
        sock.sendall(head + body[:half])
    time.sleep(0.5)
    start = time.monotonic()
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    refused = send(port, "GET", "/healthz", timeout=2).status
    statuses = []
    for sock in sockets:
        sock.sendall(body[half:])
        statuses.append(_status_line(sock))
        sock.close()
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        code = "killed after 30 s"
    return {
        "in_flight": count,
        "statuses": sorted(statuses),
        "new_connection_after_signal": str(refused),
        "exit_status": code,
        "exit_s": round(time.monotonic() - start, 2),
    }


def classify_head(body: bytes, content_type: str) -> bytes:
    """The request line and headers of a classify upload of `body`, to send by hand in parts."""
    return (
        "POST /api/v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()


def _status_line(sock: socket.socket) -> str:
    try:
        data = sock.recv(100)
    except OSError as error:
        return f"error:{type(error).__name__}"
    return data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "no answer"


def _form(boundary: str, parts: list[tuple[str, bytes, str]]) -> bytes:
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _code(answer: Answer) -> str | None:
    try:
        return json.loads(answer.body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def _brief(answer: Answer) -> dict[str, object]:
    return {"status": answer.status, "error": _code(answer), "s": round(answer.seconds, 2)}


# --- the whole run --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(server_args: list[str], log: io.TextIOBase) -> tuple[subprocess.Popen, int]:
    """`python -m demo_server` on 127.0.0.1 and a free port (its stderr to `log`), once
    /healthz answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "demo_server", "--host", "127.0.0.1", "--port", str(port)]
        + server_args,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while send(port, "GET", "/healthz", timeout=2).status != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            log.seek(0)
            raise RuntimeError(f"the server did not start: {log.read()}")
        time.sleep(0.2)
    return process, port


def run_attack(server_args: list[str], hostile: dict[str, Callable[[], bytes]] | None = None):
    """Every phase against a fresh server; the report as a JSON-ready dict."""
    files = {name: make() for name, make in (hostile or HOSTILE_FILES).items()}
    image = synthetic_jpeg()
    with tempfile.TemporaryFile("w+") as log:
        process, port = start_server(server_args, log)
        try:
            report = _phases(process, port, files, image)
            process.wait(TIMEOUT_S)
            log.seek(0)
            lines = [line for line in log.read().splitlines() if "queue depth" not in line]
            report["server_log"] = lines[-LOG_LINES:]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return report


def _phases(
    process: subprocess.Popen, port: int, files: dict[str, bytes], image: bytes
) -> dict[str, object]:
    """Warm up, then each phase in turn while one client sends ordinary requests."""
    report: dict[str, object] = {}
    for _ in range(10):
        upload(port, image)
    sampler = Sampler(process.pid)
    before = process_rss(process.pid)
    ordinary = Ordinary(port, image)
    time.sleep(2.0)
    report["ordinary_before"] = ordinary.summary("warm-up")
    hostile_report = {}
    for name, data in files.items():
        sampler.reset()
        with ordinary.phase(name):
            hostile_report[name] = hostile_phase(port, data, image)
        hostile_report[name]["peak_rss_growth_mb"] = round((sampler.peak() - before) / 2**20)
        hostile_report[name]["ordinary"] = ordinary.summary(name)
    report["hostile_uploads"] = hostile_report
    with ordinary.phase("slow_sockets"):
        report["slow_sockets"] = slow_sockets_phase(port)
    report["slow_sockets"]["ordinary"] = ordinary.summary("slow_sockets")
    with ordinary.phase("point_six"):
        report["point_six"] = point_six_phase(port, image)
    ordinary.stop()
    sampler.stop()
    time.sleep(SETTLE_S)
    settled = process_rss(process.pid)
    report["memory_mb"] = {
        "before": round(before / 2**20),
        "settled": round(settled / 2**20),
        "settled_vs_before": round(settled / before - 1, 3),
    }
    report["shutdown"] = shutdown_phase(process, port, image)
    return report
