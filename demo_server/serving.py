"""Waitress as the demo runs it: connection limits set on purpose, JSON errors, and a graceful
shutdown.

- **Limits.** `ConnectionLimits` holds the numbers (README "Connections and restarts"): a
  connection limit well above what slow clients can hold here, an idle timeout, and deadlines
  waitress itself lacks: a request's headers must arrive within `header_timeout_s` of its
  first byte and its body within `request_timeout_s`, else the connection is closed (a client
  sending a byte every half second holds a connection for seconds, not minutes).
- **Errors waitress writes itself** (400, 413, 431, 501) are the app's JSON shape with the
  security headers; a request refused at its headers (a body over the limit) is answered at
  once, without the "100 Continue" that would invite its body first.
- **Shutdown.** `serve` runs waitress's loop until SIGTERM or SIGINT, then stops accepting,
  finishes the requests already received (at most `drain_s`), closes the rest, logs, and
  returns (exit status 0).
"""

from __future__ import annotations

import json
import logging
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask

from demo_server.config import ServerConfig
from demo_server.errors import error_body
from demo_server.security import SECURITY_HEADERS

# How often the loop looks for slow requests and for a stop signal (seconds).
LOOP_S = 0.25
# File descriptors kept free besides the connections (models, logs, pipes).
SPARE_FILES = 64
# waitress's error statuses -> the app's error codes (demo_server.errors.HTTP_CODES).
_ERROR_CODES = {
    400: "bad_request",
    413: "request_too_large",
    431: "headers_too_large",
    501: "not_implemented",
}


@dataclass(frozen=True)
class ConnectionLimits:
    """Connections, their timeouts, and the shutdown drain (seconds)."""

    connection_limit: int = 1000
    channel_timeout_s: int = 30
    cleanup_interval_s: int = 5
    header_timeout_s: float = 10.0
    request_timeout_s: float = 60.0
    max_header_bytes: int = 64 * 1024
    drain_s: float = 10.0


def waitress_options(
    config: ServerConfig, threads: int, limits: ConnectionLimits | None = None
) -> dict[str, Any]:
    """Keyword arguments for waitress.create_server: bodies in memory and refused past
    MAX_CONTENT_LENGTH by waitress itself (before they are read), the limits above."""
    limits = limits or ConnectionLimits()
    return {
        "threads": threads,
        # waitress refuses a Content-Length >= this at the headers: the app's own limit + 1.
        "max_request_body_size": config.max_request_bytes + 1,
        "inbuf_overflow": config.max_request_bytes + 2,  # never spooled to a temporary file
        "max_request_header_size": limits.max_header_bytes,
        "connection_limit": limits.connection_limit,
        "channel_timeout": limits.channel_timeout_s,
        "cleanup_interval": limits.cleanup_interval_s,
        "asyncore_use_poll": True,  # select() stops at 1024 descriptors
        "ident": "demo_server",
    }


class JsonErrorTask(ErrorTask):
    """waitress's own error answers in the app's JSON shape, with the security headers."""

    def execute(self) -> None:
        error = self.request.error
        limit = self.channel.adj.max_request_body_size - 1
        message = {
            413: f"The request is larger than the limit of {limit:,} bytes.",
            431: "The request's headers are larger than the limit of "
            f"{self.channel.adj.max_request_header_size:,} bytes.",
        }.get(error.code, f"{error.reason}: {error.body}.")
        body = json.dumps(error_body(_ERROR_CODES.get(error.code, "bad_request"), message))
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend(
            [
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-store"),
                *SECURITY_HEADERS.items(),
            ]
        )
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body.encode())


class DemoChannel(HTTPChannel):
    """waitress's channel plus JSON errors, no "100 Continue" for a refused request, and the
    time its current request started arriving (for `too_slow`)."""

    error_task_class = JsonErrorTask
    receiving_since = 0.0

    def received(self, data: bytes) -> bool:
        before = self.request
        result = super().received(data)
        if self.request is not None and self.request is not before:
            self.receiving_since = time.monotonic()
        return result

    def send_continue(self) -> None:
        if self.request.error is not None:  # refused at the headers: answer now, read no body
            self.request.expect_continue = False
            return
        super().send_continue()

    def too_slow(self, now: float, limits: ConnectionLimits) -> bool:
        """A request still arriving past its deadline (headers, then the whole request)."""
        request = self.request
        if request is None or self.requests:
            return False
        allowed = limits.request_timeout_s if request.headers_finished else limits.header_timeout_s
        return now - self.receiving_since > allowed

    def busy(self) -> bool:
        """Holds a request the server accepted: being served, queued, answered but not yet sent,
        or with complete headers and its body arriving."""
        request = self.request
        return bool(
            self.requests
            or self.total_outbufs_len
            or (request is not None and request.headers_finished and not request.error)
        )


@dataclass(frozen=True)
class Drain:
    """What a shutdown did: requests in flight at the signal, those left unfinished, seconds."""

    in_flight: int
    unfinished: int
    seconds: float


def create(
    app: Callable[..., Any], host: str, port: int, options: dict[str, Any]
) -> tuple[Any, dict[int, Any]]:
    """A waitress server with `DemoChannel` on every listening socket, and its socket map."""
    socket_map: dict[int, Any] = {}
    server = waitress.create_server(app, map=socket_map, host=host, port=port, **options)
    for listener in _listeners(socket_map):
        listener.channel_class = DemoChannel
    return server, socket_map


def run(
    server: Any,
    socket_map: dict[int, Any],
    stop: threading.Event,
    limits: ConnectionLimits | None = None,
) -> Drain:
    """Serve until `stop` is set, then drain (module docstring); returns what the drain did."""
    limits = limits or ConnectionLimits()
    while not stop.is_set():
        wasyncore.loop(timeout=LOOP_S, map=socket_map, use_poll=True, count=1)
        now = time.monotonic()
        for channel in _channels(socket_map):
            if channel.too_slow(now, limits):
                channel.will_close = True
    start = time.monotonic()
    for listener in _listeners(socket_map):
        wasyncore.dispatcher.close(listener)  # stop accepting; keep its wake-up trigger
    in_flight = sum(channel.busy() for channel in _channels(socket_map))
    while time.monotonic() - start < limits.drain_s:
        channels = _channels(socket_map)
        for channel in channels:
            if not channel.busy():
                channel.will_close = True
        if not channels:
            break
        wasyncore.loop(timeout=0.05, map=socket_map, use_poll=True, count=1)
    unfinished = sum(channel.busy() for channel in _channels(socket_map))
    # Threads first: one finishing a task still pulls the trigger that close_all closes.
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
    wasyncore.close_all(socket_map)
    return Drain(in_flight, unfinished, round(time.monotonic() - start, 3))


def serve(
    app: Callable[..., Any],
    host: str,
    port: int,
    options: dict[str, Any],
    limits: ConnectionLimits | None = None,
    banner: str = "",
) -> Drain:
    """Serve on host:port until SIGTERM / SIGINT, drain, log the drain on stderr, return.

    `banner` goes to stderr once the signals are handled and the port is bound."""
    limits = limits or ConnectionLimits()
    logging.basicConfig()  # waitress's warnings on stderr, as waitress.serve does
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    options = {**options, "connection_limit": _affordable(options["connection_limit"])}
    server, socket_map = create(app, host, port, options)
    if banner:
        print(banner, file=sys.stderr, flush=True)
    drain = run(server, socket_map, stop, limits)
    print(
        f"{received[0] if received else 'stop'}: stopped accepting; {drain.in_flight} "
        f"request(s) in flight, {drain.in_flight - drain.unfinished} finished, "
        f"{drain.unfinished} cut off after {drain.seconds} s; exiting",
        file=sys.stderr,
        flush=True,
    )
    return drain


def _affordable(connection_limit: int) -> int:
    """The connection limit the process's open-file limit allows (raised up to the hard limit
    when it can be), with SPARE_FILES left over."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connection_limit + SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft == resource.RLIM_INFINITY:
        return connection_limit
    return max(1, min(connection_limit, soft - SPARE_FILES))


def _listeners(socket_map: dict[int, Any]) -> list[BaseWSGIServer]:
    return [d for d in list(socket_map.values()) if isinstance(d, BaseWSGIServer)]


def _channels(socket_map: dict[int, Any]) -> list[DemoChannel]:
    return [d for d in list(socket_map.values()) if isinstance(d, DemoChannel)]
