"""A history drawn as a timeline, one row per client, as Porcupine draws it: each operation a bar from its call to
its return, labelled with what it did and saw. For the linearizability checker's failures, which are small.

    client 1  |--w(k)=1--|
    client 2        |--r(k)=2--|       (unknown operations run to the right edge: ...)
"""
from __future__ import annotations

import math

from raftkube.linearizability import FAILED, UNKNOWN, Op

WIDTH = 72


def label(op: Op) -> str:
    if op.kind == "read":
        seen = "absent" if op.value is None else repr(op.value)
        return f"r({op.key})={seen}"
    if op.kind == "write":
        return f"w({op.key})={op.value!r}"
    verdict = "" if op.outcome == UNKNOWN else (" ok" if op.succeeded else " no")
    return f"cas({op.key}) {op.expected!r}->{op.value!r}{verdict}"


def render(ops: list[Op], width: int = WIDTH) -> str:
    """The operations as text: a time axis scaled to `width` columns, a row per client, then a legend."""
    if not ops:
        return "(no operations)"
    start = min(op.call for op in ops)
    finite = [op.ret for op in ops if op.ret != math.inf]
    end = max(finite + [op.call for op in ops]) or start
    span = (end - start) or 1.0

    def column(t: float) -> int:
        return width if t == math.inf else round((t - start) / span * (width - 1))

    rows: dict[int, list[str]] = {}
    legend = []
    for n, op in enumerate(sorted(ops, key=lambda o: o.call), 1):
        row = rows.setdefault(op.client, [" "] * (width + 4))
        a, b = column(op.call), column(op.ret)
        b = max(b, a + 1)
        for x in range(a, min(b, width + 3)):
            row[x] = "-"
        row[a] = "|"
        if op.ret == math.inf:
            row[min(b, width + 1):width + 4] = list("...")
        else:
            row[min(b, width + 3)] = "|"
        tag = str(n)
        for i, ch in enumerate(tag):
            if a + 1 + i < b:
                row[a + 1 + i] = ch
        outcome = {UNKNOWN: " (outcome unknown)", FAILED: " (failed)"}.get(op.outcome, "")
        legend.append(f"  {n:>3}  client {op.client}  {label(op)}{outcome}  "
                      f"[{op.call - start:.3f}s .. {'?' if op.ret == math.inf else f'{op.ret - start:.3f}s'}]")
    lines = [f"time 0 .. {span:.3f}s"]
    lines += [f"client {c:>3} {''.join(r).rstrip()}" for c, r in sorted(rows.items())]
    return "\n".join(lines + ["", *legend])
