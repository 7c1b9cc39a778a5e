"""Kubernetes errors: an `ApiError` raised anywhere in a handler leaves as a `Status` object."""
from __future__ import annotations

from typing import Any

REASONS = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 406: "NotAcceptable",
           409: "Conflict", 410: "Expired", 413: "RequestEntityTooLarge", 415: "UnsupportedMediaType",
           422: "Invalid", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


class ApiError(Exception):
    def __init__(self, code: int, message: str, *, reason: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict[str, Any]:
        """The Status, its fields in kube-apiserver's order (clients have compared error bodies as text)."""
        out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": self.message, "reason": self.reason}
        if self.details is not None:
            out["details"] = self.details
        out["code"] = self.code
        return out


def _details(resource: str, name: str, group: str = "") -> dict[str, Any]:
    return {"name": name, **({"group": group} if group else {}), "kind": resource}


def no_such_path(message: str) -> ApiError:
    """A path nothing here serves (no such resource type or subresource). kube-apiserver answers it NotFound with
    empty details, and clients tell it from a missing object by their empty name: `kubectl debug` reads the
    details of a 404 without checking that they are there."""
    return ApiError(404, message, details={})


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    what = f"{resource}.{group}" if group else resource
    return ApiError(404, f'{what} "{name}" not found', details=_details(resource, name, group))


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    what = f"{resource}.{group}" if group else resource
    return ApiError(409, f'{what} "{name}" already exists', reason="AlreadyExists",
                    details=_details(resource, name, group))


class StaleWrite(ApiError):
    """A compare-and-swap lost to another writer: 409 Conflict, which the server may retry on the object as it
    now is (api/retry.py `retry_stale`) when the client did not pin a resourceVersion."""


def conflict(resource: str, name: str, group: str = "") -> StaleWrite:
    what = f"{resource}.{group}" if group else resource
    return StaleWrite(409, f'Operation cannot be fulfilled on {what} "{name}": the object has been modified; '
                           "please apply your changes to the latest version and try again",
                      details=_details(resource, name, group))


def invalid(kind: str, name: str, causes: list[tuple[str, str]], group: str = "") -> ApiError:
    """422 with one cause per bad field: (field path, what is wrong)."""
    text = "; ".join(f"{f}: {m}" for f, m in causes)
    return ApiError(422, f'{kind} "{name}" is invalid: {text}',
                    details={**_details(kind.lower(), name, group),
                             "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes]})


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def gone(message: str) -> ApiError:
    return ApiError(410, message, reason="Expired")
