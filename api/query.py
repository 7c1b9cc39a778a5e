"""Boolean query parameters, read as kube-apiserver's Go code reads them: exactly what `strconv.ParseBool`
accepts, and a 400 for anything else (a client sending `watch=True` gets a watch, `watch=yes` an error).

    flag(request.query, "watch")        # True for ?watch=1, t, T, TRUE, true, True; False when absent
"""
from __future__ import annotations

from typing import Mapping

from api import errors

TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(text: str) -> bool | None:
    """Go's strconv.ParseBool; None where it would fail."""
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    return None


def flag(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    value = query.get(name)
    if value is None:
        return default
    parsed = parse_bool(value)
    if parsed is None:
        raise errors.bad_request(f"invalid value {value!r} for the boolean parameter {name}: use one of "
                                 f"{', '.join(sorted(TRUE | FALSE))}")
    return parsed
