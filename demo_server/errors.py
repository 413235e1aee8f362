"""Every error is JSON ``{"error": {"code", "message"}}``; no stack trace ever reaches a client."""

from __future__ import annotations

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
}


# Seconds a client told "busy" (503) should wait before trying again.
RETRY_AFTER_S = 1


class ApiError(Exception):
    """A client-facing error with an HTTP status, a stable code, a readable message and any
    headers it needs (a 503's Retry-After)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def busy(what: str = "every interpreter is in use") -> ApiError:
    """The 503 for work that would wait too long: come back in RETRY_AFTER_S seconds."""
    return ApiError(
        503,
        "busy",
        f"The server is busy ({what}); try again in a moment.",
        {"Retry-After": str(RETRY_AFTER_S)},
    )


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The one shape of every error, also for the ones waitress writes itself."""
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify(error_body(code, message)), status


def register_error_handlers(app: Flask) -> None:
    """JSON for our errors, for Werkzeug's HTTP errors and (generically) for everything else."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        response, status = error_response(exc.status, exc.code, exc.message)
        response.headers.update(exc.headers)
        return response, status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"The request is larger than the limit of {limit:,} bytes."
        response, status = error_response(
            status, HTTP_CODES.get(status, exc.name.lower().replace(" ", "_")), message
        )
        # Keep the exception's own headers but its HTML content type: e.g. a 405's `Allow`.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        # The traceback goes to the server log only; it holds no request data.
        app.logger.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on the server.")
