"""A campaign's history in a format other checkers read: Jepsen's EDN (Knossos, Elle, Jepsen's own tools) or the same
entries as JSON (`--export FILE`: FILE.json gives JSON, anything else EDN).

Each operation is two entries, as Jepsen records them: an invocation (:type :invoke) when the client sent it, and
a completion when it returned: :ok (it happened; a read's :value is what it saw), :fail (it certainly did not
happen: refused, or a compare-and-swap whose compare did not hold), or :info (unknown, a timeout: it may have
happened at any time after its invocation). :f is :read, :write or :cas; :value the register's value (nil: the key
was absent; [expected new] for a cas; nil in a read's invocation); :time nanoseconds since the first invocation;
:index the entry's position. :process is the client, single-threaded as Jepsen's processes are: after an :info the
client goes on as a new process (client + stride, stride = the number of clients), as Jepsen's workers do.

Every entry also has :key, the register. Knossos checks one register at a time: split by :key first (what
jepsen.independent does for a test with many keys), then check each part with knossos.model/cas-register. The
appends are writes of their own key (`set/...`, the value standing for its size in bytes), and the checker's
final read of each such key comes last, one process each, so a lost acknowledged write is a register anomaly too.
"""
from __future__ import annotations

import itertools
import json
from typing import Any

from raftkube.linearizability import FAILED, OK, UNKNOWN, Op

Entry = dict[str, Any]


def entries(ops: list[Op]) -> list[Entry]:
    """The Jepsen history of `ops`: invocations and completions in time order, each op's completion after its
    invocation, and at equal times invocations first (concurrent, as the checker sees them)."""
    if not ops:
        return []
    ordered = sorted(ops, key=lambda o: o.call)
    start = ordered[0].call
    timed: list[tuple[float, int, Entry]] = []
    for op, process in zip(ordered, _processes(ordered)):
        value = [op.expected, op.value] if op.kind == "cas" else op.value
        base = {"process": process, "f": op.kind, "key": op.key}
        timed.append((op.call, 0, {**base, "type": "invoke", "value": None if op.kind == "read" else value}))
        timed.append((op.ret, 1, {**base, "type": _completion(op), "value": value}))
    timed.sort(key=lambda t: (t[0], t[1]))
    return [{"index": i, "time": round((t - start) * 1e9), **entry} for i, (t, _, entry) in enumerate(timed)]


def _processes(ordered: list[Op]) -> list[int]:
    """Each operation's process: its client's, a new one for a client after each :info (client + stride * crashes),
    and one of its own for each of the checker's reads (client < 0), numbered past all the others."""
    stride = max((op.client for op in ordered), default=-1) + 1
    crashes: dict[int, int] = {}
    processes: list[int | None] = []
    for op in ordered:
        if op.client < 0:
            processes.append(None)
            continue
        processes.append(op.client + stride * crashes.get(op.client, 0))
        crashes[op.client] = crashes.get(op.client, 0) + (op.outcome == UNKNOWN)
    spare = itertools.count(max((p for p in processes if p is not None), default=-1) + 1)
    return [next(spare) if p is None else p for p in processes]


def _completion(op: Op) -> str:
    if op.outcome == UNKNOWN:
        return "info"
    if op.outcome == FAILED or (op.kind == "cas" and not op.succeeded):
        return "fail"
    return OK


def edn(value: Any) -> str:
    """`value` as EDN: None -> nil, strings quoted, lists as vectors, dicts as maps with keyword keys."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(edn(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f":{k} {_edn_field(k, v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no EDN for {type(value).__name__}")


def _edn_field(key: str, value: Any) -> str:
    """:type and :f are keywords in Jepsen's histories."""
    return f":{value}" if key in ("type", "f") else edn(value)


def dumps(history: list[Entry], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(history, indent=None, separators=(",", ":")).replace("},{", "},\n{") + "\n"
    return "[" + "\n ".join(edn(e) for e in history) + "]\n"


def write(path: str, ops: list[Op]) -> str:
    """Write the history of `ops` to `path` (JSON for a .json file, EDN otherwise); the format written."""
    fmt = "json" if path.endswith(".json") else "edn"
    with open(path, "w") as f:
        f.write(dumps(entries(ops), fmt))
    return fmt
