"""The error a request is refused with: a status, a reason and a detail for the log."""

from __future__ import annotations

__all__ = ["TLS_DETAIL", "HttpError", "bad_request"]


class HttpError(Exception):
    """A request the server answers with an error status, then closes."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.status = status
        self.reason = reason
        self.detail = detail or reason


def bad_request(detail: str) -> HttpError:
    """A 400 with a detail for the log."""
    return HttpError(400, "Bad Request", detail)


TLS_DETAIL = "TLS handshake on a plain HTTP port"
