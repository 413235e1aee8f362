"""``python -m demo_server.loadtest``: a bounded load test against a demo server on this machine.

It refuses any host that is not loopback, stops after --duration seconds or --max-requests
requests (whichever comes first), and reports throughput, latency and the server's memory.
With --attack it starts a server of its own on loopback instead (arguments after ``--`` are
the server's) and runs the hostile clients of demo_server.attack against it.
"""

from __future__ import annotations

import argparse
import http.client
import io
import ipaddress
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

MAX_DURATION_S = 600.0
MAX_CONCURRENCY = 64
DEFAULT_MAX_REQUESTS = 5000
TIMEOUT_S = 30.0


def is_loopback(host: str) -> bool:
    """True only for localhost and literal loopback addresses (no DNS lookups)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def synthetic_jpeg(width: int = 800, height: int = 600) -> bytes:
    """A phone-sized JPEG of smooth noise, when no --image is given."""
    rng = np.random.default_rng(0)
    small = rng.integers(60, 220, (height // 50, width // 50, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def multipart(image: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with the image in the field ``image``."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"'
        "\r\nContent-Type: image/jpeg\r\n\r\n"
    ).encode()
    return (
        head + image + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


@dataclass
class LoadReport:
    requests: int = 0
    duration_s: float = 0.0
    requests_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    server_rss_bytes_before: int | None = None
    server_rss_bytes_after: int | None = None


class _Budget:
    """A shared request budget, so all workers together stop at max_requests."""

    def __init__(self, max_requests: int, deadline: float) -> None:
        self._left = max_requests
        self._deadline = deadline
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left <= 0 or time.monotonic() >= self._deadline:
                return False
            self._left -= 1
            return True


def _server_rss(host: str, port: int) -> int | None:
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        connection.request("GET", "/healthz")
        return json.loads(connection.getresponse().read()).get("rss_bytes")
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def run_load(
    url: str,
    concurrency: int,
    duration_s: float,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    image: bytes | None = None,
    path: str = "/api/v1/classify",
) -> LoadReport:
    """Send multipart classify requests from `concurrency` threads; return the measurements."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    if parts.scheme != "http" or not is_loopback(host):
        raise ValueError(f"refusing {url!r}: only http:// on a loopback address is allowed")
    if not 1 <= concurrency <= MAX_CONCURRENCY or not 0 < duration_s <= MAX_DURATION_S:
        raise ValueError(
            f"concurrency must be 1-{MAX_CONCURRENCY}, duration 0-{MAX_DURATION_S:.0f} s"
        )
    body, content_type = multipart(image if image is not None else synthetic_jpeg())
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    report = LoadReport(server_rss_bytes_before=_server_rss(host, port))
    start = time.monotonic()
    budget = _Budget(max_requests, start + duration_s)

    def worker() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
        while budget.take():
            sent = time.perf_counter()
            try:
                connection.request("POST", path, body, {"Content-Type": content_type})
                response = connection.getresponse()
                response.read()
                status = str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                status = f"error:{type(exc).__name__}"
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
            elapsed = (time.perf_counter() - sent) * 1000.0
            with lock:
                latencies.append(elapsed)
                statuses[status] += 1
        connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(MAX_DURATION_S + TIMEOUT_S)
    report.duration_s = round(time.monotonic() - start, 3)
    report.requests = len(latencies)
    report.requests_per_s = round(report.requests / report.duration_s, 2)
    if latencies:
        p50, p99 = np.percentile(latencies, [50, 99])
        report.latency_ms = {
            "p50": round(float(p50), 2),
            "p99": round(float(p99), 2),
            "max": round(max(latencies), 2),
        }
    report.status_counts = dict(statuses)
    report.server_rss_bytes_after = _server_rss(host, port)
    return report


def format_report(report: LoadReport) -> str:
    def mib(value: int | None) -> str:
        return "n/a" if value is None else f"{value / 2**20:.1f} MiB"

    return "\n".join(
        [
            f"requests      {report.requests} in {report.duration_s} s "
            f"({report.requests_per_s} req/s)",
            "latency       " + ", ".join(f"{k} {v} ms" for k, v in report.latency_ms.items()),
            "status        "
            + ", ".join(f"{k}: {v}" for k, v in sorted(report.status_counts.items())),
            f"server RSS    {mib(report.server_rss_bytes_before)} before, "
            f"{mib(report.server_rss_bytes_after)} after",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo_server.loadtest", description=__doc__)
    parser.add_argument("--url", help="http://127.0.0.1:PORT (loopback only)")
    parser.add_argument(
        "--attack",
        action="store_true",
        help="start `python -m demo_server` on loopback and attack it (demo_server.attack)",
    )
    parser.add_argument("server_args", nargs="*", help="with --attack: the server's arguments")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--max-requests", type=int, default=DEFAULT_MAX_REQUESTS)
    parser.add_argument("--image", type=Path, help="image to send (default: a synthetic JPEG)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.attack:
        from demo_server.attack import run_attack  # it imports this module

        print(json.dumps(run_attack(args.server_args), indent=2))
        return
    if args.url is None or args.server_args:
        parser.error("give --url (and no server arguments) without --attack")
    image = None
    if args.image is not None:
        if not args.image.is_file():
            parser.error(f"image not found: {args.image}")
        image = args.image.read_bytes()
    try:
        report = run_load(args.url, args.concurrency, args.duration, args.max_requests, image)
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps(asdict(report), indent=2) if args.json else format_report(report))


if __name__ == "__main__":
    main()
