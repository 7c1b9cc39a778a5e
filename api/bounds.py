"""How big and how deep a decoded body may be, checked before anything else walks it.

A 298-byte YAML document whose aliases each repeat the level below nine times is a tree of millions of
values once expanded; a JSON merge patch nested a thousand levels deep exhausts Python's recursion; a JSON
patch of twenty `copy` operations can double an object twenty times. Each is refused here with a 413 or a
400 after at most MAX_NODES steps, never with a 500 or a stalled event loop.
"""
from __future__ import annotations

from typing import Any

from api import errors

MAX_DEPTH = 64
MAX_NODES = 200_000  # values in one body: a large ConfigMap has a few thousand
MAX_BYTES = 3 << 20  # as the request body limit: what decoding (or patching) may grow a body to


def size(value: Any, *, budget: int = MAX_BYTES, what: str = "the request body") -> int:
    """About how many bytes `value` takes as JSON; 413 once past `budget`, 400 past MAX_DEPTH levels."""
    total = nodes = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise errors.bad_request(f"{what} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, dict):
            total += 2 + sum(len(k) + 4 if isinstance(k, str) else 8 for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            total += 2 + len(item)
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, (str, bytes)):
            total += len(item) + 2
        else:
            total += 8
        if total > budget or nodes > MAX_NODES:
            raise errors.ApiError(413, f"{what} is too large: over {MAX_BYTES >> 20} MiB or {MAX_NODES} values "
                                       "once decoded (YAML aliases and JSON patch copies count in full)")
    return total
