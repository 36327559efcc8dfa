"""API errors, each carrying the HTTP status lakeFS uses for it; bodies are ``{"message": ...}``."""

from __future__ import annotations

from typing import Any

from infra.errors import LockgateError


class ApiError(LockgateError):
    """An error answered to the client with ``status`` and a JSON body ``{"message": ...}``."""

    status = 500

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"message": self.message, **self.extra}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class Gone(ApiError):
    """The entry exists but its data was deleted by garbage collection (lakeFS: 410 resource expired)."""

    status = 410


class PreconditionFailed(ApiError):
    status = 412


class PayloadTooLarge(ApiError):
    status = 413


class RangeNotSatisfiable(ApiError):
    status = 416

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size
