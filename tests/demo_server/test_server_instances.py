"""Several instances behind a load balancer (demo_server/README.md, "Several instances"): two
`python -m demo_server` processes on loopback, as shipped, and a tiny round-robin client in
front of them. Nothing is shared between instances, so any of them gives any request the same
answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_server_cli import REPO, free_port, request

SAMPLES = REPO / "sample_images"
START_S = 90  # the shipped classifier, gate and segmenter load in a few seconds


@contextmanager
def instances(count: int, tmp_path: Path) -> Iterator[list[int]]:
    """`count` servers of the shipped files, each on its own loopback port; their ports once
    every one answers /healthz. All are stopped on the way out, killed if they linger."""
    ports = [free_port() for _ in range(count)]
    logs = [tmp_path / f"instance{i}.log" for i in range(count)]
    processes = []
    try:
        for port, log in zip(ports, logs, strict=True):
            with open(log, "wb") as out:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "demo_server", "--port", str(port)],
                        cwd=REPO,
                        env={**os.environ, "PYTHONPATH": str(REPO)},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        deadline = time.monotonic() + START_S
        for port, process, log in zip(ports, processes, logs, strict=True):
            while True:
                try:
                    if request(port, "GET", "/healthz")[0] == 200:
                        break
                except OSError:
                    pass
                assert process.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"no /healthz on {port}: {log.read_text()}"
                time.sleep(0.2)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class RoundRobin:
    """The load balancer's part, the least of it: each request to the next instance in turn,
    on loopback only, one at a time, each bounded by `request`'s timeout."""

    def __init__(self, ports: list[int]):
        self.ports = ports
        self.sent = 0

    def send(self, method: str, path: str, body: bytes | None = None, headers=None):
        """(the instance's port, status, JSON body)."""
        port = self.ports[self.sent % len(self.ports)]
        self.sent += 1
        status, _, answer = request(port, method, path, body, headers)
        return port, status, json.loads(answer)


def without_timing(answer: dict) -> dict:
    """An answer less what differs from one call to the next: how long it took."""
    return {key: value for key, value in answer.items() if key != "timing_ms"}


@pytest.mark.slow  # two servers of the shipped model, about ten seconds
def test_two_instances_behind_round_robin_answer_alike(tmp_path: Path):
    images = [
        SAMPLES / "bcc_dermoscopic_ISIC_0027998.jpg",
        SAMPLES / "bcc_dermoscopic_ISIC_0027998.jpg",  # again: no instance remembers it
        next(p for p in sorted(SAMPLES.glob("*.jpg")) if "dermoscopic" not in p.name),
    ]
    with instances(2, tmp_path) as ports:
        balancer = RoundRobin(ports)
        cards = [balancer.send("GET", "/api/v1/model") for _ in ports]
        assert {port for port, _, _ in cards} == set(ports)
        assert all(status == 200 for _, status, _ in cards)
        assert cards[0][2] == cards[1][2]  # the same files (the card carries the file's hash)
        alike = []
        for image in images:
            body, headers = image.read_bytes(), {"Content-Type": "image/jpeg"}
            answers = [balancer.send("POST", "/api/v1/classify", body, headers) for _ in ports]
            assert {port for port, _, _ in answers} == set(ports)
            (_, status_a, a), (_, status_b, b) = answers
            assert status_a == status_b == 200, (a, b)
            assert a["verdict"] in ("classified", "not_a_lesion")
            assert without_timing(a) == without_timing(b)
            alike.append(without_timing(a))
        assert balancer.sent == 2 + 2 * len(images)
        assert alike[0] == alike[1] != alike[2]
