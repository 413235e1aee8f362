"""Large files sent gzip-compressed to clients that accept it: the runtime's WebAssembly and
JavaScript and the model files the page downloads (docs/on_device.md, "A light first visit").

Each file is compressed once, on its first request, and kept in memory in a cache bounded in
bytes (the least recently used leave first). A file gzip shrinks by less than 5%, one larger
than the whole cache, a range request, or a client that does not accept gzip gets the file as
it is. Every response varies on Accept-Encoding, so shared caches keep the two apart."""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from pathlib import Path

from flask import Response, current_app, request, send_file

GZIP_LEVEL = 6  # level 9 takes twice as long for 1% less on the WebAssembly
WORTH = 0.95  # compressed only when that saves at least 5% (the float16 gate: 7.6%)
EXTENSION = "demo_server.gzip_cache"


class GzipCache:
    """Compressed copies of files by (path, modification time, size), at most `max_bytes` of
    them; None for a file not worth compressing or too large to keep (that answer is kept
    too)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple[str, int, int], bytes | None] = OrderedDict()
        self.used = 0
        self.lock = threading.Lock()

    def get(self, path: Path) -> bytes | None:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        data = path.read_bytes()
        packed = gzip.compress(data, GZIP_LEVEL, mtime=0)
        # Not worth it, or too large to keep (then not compressed again on every request):
        # None, which takes no room. The files served are a fixed set, so these stay few.
        fits = len(packed) <= WORTH * len(data) and len(packed) <= self.max_bytes
        body = packed if fits else None
        with self.lock:
            if key not in self.entries:
                self.entries[key] = body
                self.used += len(body or b"")
            while self.used > self.max_bytes:
                _, dropped = self.entries.popitem(last=False)
                self.used -= len(dropped or b"")
        return body


def send_compressible(path: Path, mimetype: str) -> Response:
    """`path` as send_file sends it, or its gzip-compressed copy when the client accepts gzip."""
    cache: GzipCache | None = current_app.extensions.get(EXTENSION)
    accepts = request.accept_encodings["gzip"] > 0
    body = cache.get(path) if cache and accepts and not request.range else None
    if body is None:
        response = send_file(path, mimetype=mimetype)
    else:
        stat = path.stat()
        response = Response(body, mimetype=mimetype)
        response.headers["Content-Encoding"] = "gzip"
        response.set_etag(f"{stat.st_mtime_ns:x}-{stat.st_size:x}-gzip")
        response.last_modified = stat.st_mtime
        response.make_conditional(request)
    response.vary.add("Accept-Encoding")
    return response
