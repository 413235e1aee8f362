"""Security headers, and a request class that never spools uploads to a temporary file."""

from __future__ import annotations

import io
from typing import IO

from flask import Flask, Request, Response
from werkzeug.exceptions import RequestEntityTooLarge

from demo_server.errors import ApiError

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "geolocation=(), microphone=(), camera=(self)",
}


# Flask's limits on a multipart form: a text field's size (Flask's default; Werkzeug applies it
# to its 64 KiB read buffer too, so it cannot be much lower) and the number of parts (the form
# has the image and a dozen short answers).
FORM_LIMITS = {"MAX_FORM_MEMORY_SIZE": 500_000, "MAX_FORM_PARTS": 100}


class InMemoryRequest(Request):
    """Werkzeug writes multipart files over 500 KB to a temporary file; keep them in memory.

    The request size is capped by MAX_CONTENT_LENGTH, so memory stays bounded. A form over
    FORM_LIMITS is a 413 that names those limits (Werkzeug's own 413 says nothing).
    """

    def _load_form_data(self) -> None:
        try:
            super()._load_form_data()
        except RequestEntityTooLarge:
            if self.content_length is not None and self.content_length > (
                self.max_content_length or self.content_length
            ):
                raise
            raise ApiError(
                413,
                "form_too_large",
                f"A text field of the form is over {self.max_form_memory_size:,} bytes or the "
                f"form has over {self.max_form_parts:,} parts.",
            ) from None

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        return io.BytesIO()


def add_security_headers(app: Flask) -> None:
    """Set the headers on every response; API answers are about health, so never cached."""

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.mimetype == "application/json":
            response.headers["Cache-Control"] = "no-store"
        return response
