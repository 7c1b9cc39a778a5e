"""Kubernetes resource quantities ("100m", "1", "512Mi", "1Gi", "1e3", "0.5"), as exact fractions.

A quantity is a signed decimal number followed by a suffix: binary (Ki Mi Gi Ti Pi Ei, powers of 1024), decimal
(n u m "" k M G T P E, powers of 1000) or a decimal exponent (e3, E-2). The scheduler counts cpu in millicores and
memory in bytes, both rounded up as Kubernetes' `MilliValue()` and `Value()` do, so "0.1m" cpu still costs 1m.
"""
from __future__ import annotations

import math
import re
from fractions import Fraction

_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
_DECIMAL = {"n": Fraction(1, 10 ** 9), "u": Fraction(1, 10 ** 6), "m": Fraction(1, 1000), "": Fraction(1),
            "k": Fraction(10 ** 3), "M": Fraction(10 ** 6), "G": Fraction(10 ** 9), "T": Fraction(10 ** 12),
            "P": Fraction(10 ** 15), "E": Fraction(10 ** 18)}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


def parse_quantity(text: str | int | float) -> Fraction:
    """The exact value of a quantity; ValueError for anything Kubernetes would refuse."""
    if isinstance(text, bool):
        raise ValueError(f"quantity {text!r}: not a number")
    if isinstance(text, (int, float)):
        return Fraction(text)
    match = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"quantity {text!r}: must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    number, exponent, suffix = match.groups()
    value = Fraction(number)
    if exponent:
        return value * Fraction(10) ** int(exponent[1:])
    suffix = suffix or ""
    return value * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


def milli_value(text: str | int | float) -> int:
    """The quantity in thousandths, rounded up (cpu: "250m" -> 250, "1" -> 1000)."""
    return math.ceil(parse_quantity(text) * 1000)


def value(text: str | int | float) -> int:
    """The quantity as a whole number, rounded up (memory: "1Ki" -> 1024, "1.5" -> 2)."""
    return math.ceil(parse_quantity(text))
