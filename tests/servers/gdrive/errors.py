"""Google's JSON error format (developers.google.com/drive/api/guides/handle-errors)."""

from __future__ import annotations

import json

from werkzeug.wrappers import Response

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           405: "METHOD_NOT_ALLOWED", 411: "LENGTH_REQUIRED", 416: "OUT_OF_RANGE", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL"}


class DriveError(Exception):
    """An API error: ``{"error":{"code","message","errors":[{"domain","reason","message",...}]}}``."""

    def __init__(self, code: int, reason: str, message: str, *, domain: str = "global",
                 location: str | None = None, location_type: str = "parameter",
                 headers: dict[str, str] | None = None, hint: str | None = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code, self.reason, self.message, self.domain = code, reason, message, domain
        self.location, self.location_type = location, location_type
        self.headers = dict(headers or {})
        self.hint = hint  # why the fake refused (X-Fake-Reason header; not part of Google's answer)

    def body(self) -> dict:
        err = {"domain": self.domain, "reason": self.reason, "message": self.message}
        if self.location:
            err["location"] = self.location
            err["locationType"] = self.location_type
        return {"error": {"code": self.code, "message": self.message, "errors": [err]}}

    def response(self) -> Response:
        r = Response(json.dumps(self.body(), indent=1), self.code, content_type="application/json; charset=UTF-8")
        for k, v in self.headers.items():
            r.headers[k] = v
        if self.hint:
            r.headers["X-Fake-Reason"] = self.hint.encode("ascii", "replace").decode()
        return r


def invalid(param: str, message: str = "Invalid Value", hint: str | None = None) -> DriveError:
    return DriveError(400, "invalid", message, location=param, hint=hint)


def bad_request(message: str, hint: str | None = None) -> DriveError:
    return DriveError(400, "badRequest", message, hint=hint)


def not_found(file_id: str) -> DriveError:
    return DriveError(404, "notFound", f"File not found: {file_id}.", location="fileId")


class DropConnection(ConnectionError):
    """Raised from a handler: werkzeug closes the socket without writing a response."""
