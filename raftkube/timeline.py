"""A history drawn as a timeline, one row per client, as Porcupine draws it: each operation a bar from its call to
its return, labelled with what it did and saw. For the linearizability checker's failures, which are small.

    client 1  |--w(k)=1--|
    client 2        |--r(k)=2--|       (unknown operations run to the right edge: ...)

As in Porcupine, the axis is the order of the calls and returns, not their times: one operation may take seconds
and the next a millisecond, and to scale the short ones would vanish. Which call came before which return is what
linearizability is about; the legend gives the times (raftkube/timeline_html.py draws the same in HTML).
"""
from __future__ import annotations

import math

from raftkube.linearizability import FAILED, UNKNOWN, Op

WIDTH = 72
CHECKER = -1  # the client number of the checker's own reads (after every fault was healed)


def who(client: int) -> str:
    return "checker" if client == CHECKER else f"client {client:>3}"


def label(op: Op) -> str:
    if op.kind == "read":
        seen = "absent" if op.value is None else repr(op.value)
        return f"r({op.key})={seen}"
    if op.kind == "write":
        return f"w({op.key})={op.value!r}"
    verdict = "" if op.outcome == UNKNOWN else (" ok" if op.succeeded else " no")
    return f"cas({op.key}) {op.expected!r}->{op.value!r}{verdict}"


def positions(times: list[float]) -> dict[float, float]:
    """Each finite time's place on the axis, from 0 to 1, by order: equal times share a place, and the gaps between
    consecutive times are all the same (infinity, an unknown return, is 1: the right edge)."""
    distinct = sorted({t for t in times if t != math.inf})
    step = 1.0 / max(1, len(distinct) - 1)
    return {**{t: i * step for i, t in enumerate(distinct)}, math.inf: 1.0}


def render(ops: list[Op], width: int = WIDTH) -> str:
    """The operations as text: calls and returns in order across `width` columns, a row per client, then a legend
    with the times."""
    if not ops:
        return "(no operations)"
    start = min(op.call for op in ops)
    finite = [op.ret for op in ops if op.ret != math.inf]
    span = max(finite + [op.call for op in ops]) - start
    place = positions([t for op in ops for t in (op.call, op.ret)])

    def column(t: float) -> int:
        return width if t == math.inf else round(place[t] * (width - 1))

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
        via = f" via {op.via}" if op.via else ""
        legend.append(f"  {n:>3}  {who(op.client)}{via}  {label(op)}{outcome}  "
                      f"[{op.call - start:.3f}s .. {'?' if op.ret == math.inf else f'{op.ret - start:.3f}s'}]")
    lines = [f"calls and returns in order, over {span:.3f}s (the legend has the times)"]
    lines += [f"{who(c):<10} {''.join(r).rstrip()}" for c, r in sorted(rows.items())]
    return "\n".join(lines + ["", *legend])
