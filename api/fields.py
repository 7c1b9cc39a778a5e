"""Decoding a request body as kube-apiserver does (api/schema.py), and `fieldValidation`.

A field of the wrong type is a 400 whatever the mode. Unknown fields, at any depth, are never stored:
fieldValidation=Strict refuses them (400), Warn (the default here) answers with a Warning header, Ignore
drops them silently.
"""
from __future__ import annotations

from typing import Any

from api import errors, schema

MODES = ("Strict", "Warn", "Ignore")


def kind_of(definition: str) -> str:
    return definition.rsplit(".", 1)[1]


def check(definition: str, body: Any, mode: str | None, version: str = "v1") -> tuple[Any, list[str]]:
    """The body as stored (unknown fields gone, times in Kubernetes' form) and the warnings to send."""
    mode = mode or "Warn"
    if mode not in MODES:
        raise errors.bad_request(f"fieldValidation must be Strict, Warn or Ignore, not {mode!r}")
    body, found = schema.decode(definition, body)
    if found.invalid:
        kind = kind_of(definition)
        detail = "; ".join(f"{path}: {what}" for path, what in found.invalid[:5])
        more = f" (and {len(found.invalid) - 5} more)" if len(found.invalid) > 5 else ""
        raise errors.bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {detail}{more}')
    messages = [f'unknown field "{path}"' for path in found.unknown]
    if messages and mode == "Strict":
        raise errors.bad_request("strict decoding error: " + ", ".join(messages))
    return body, (messages if mode == "Warn" else [])
