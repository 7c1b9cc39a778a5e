"""Is a history of register operations linearizable? (Wing & Gong's search, with Lowe's cache,
split by key as Porcupine does: operations on different keys never constrain each other.)

An operation has a call time, a return time and an outcome:
- ok: it took effect between call and return, with the result recorded;
- failed: it certainly did not take effect (dropped from the check);
- unknown: a timeout; it may have taken effect at any moment after its call, or never. Its return
  time is taken as the end of time; an unknown read tells nothing and is dropped.

The search walks the calls and returns in time order. At a call it tries to put that operation next
in the linearization (if the register model accepts it and the pair (set of operations already
linearized, register value) has not been tried before); at a return whose operation is not yet
linearized it backtracks. The history is linearizable when every operation finds a place.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

OK, FAILED, UNKNOWN = "ok", "failed", "unknown"


@dataclass
class Op:
    key: str
    kind: str  # "read" | "write" | "cas"
    call: float
    ret: float
    outcome: str = OK
    value: Any = None  # read: the value seen (None: absent); write: the value written
    expected: Any = None  # cas: the value it compared against
    succeeded: bool = True  # cas: did the compare hold
    client: int = 0
    id: int = field(default=0, compare=False)
    via: str = ""  # the server the client sent it to, when known (shown, never checked)
    revision: int = field(default=0, compare=False)  # an acknowledged write's (history_checks.check_revisions)


def step(state: Any, op: Op) -> tuple[bool, Any]:
    """The register model: can `op` happen in `state`, and the state after it."""
    if op.kind == "read":
        return op.value == state, state
    if op.kind == "write":
        return True, op.value
    if op.outcome == UNKNOWN:  # an unknown cas: it applies whenever its compare holds
        return True, op.value if state == op.expected else state
    if op.succeeded:
        return state == op.expected, op.value
    return state != op.expected, state


@dataclass
class _Entry:
    time: float
    is_call: bool
    op: Op
    match: "_Entry | None" = None
    prev: "_Entry | None" = None
    next: "_Entry | None" = None


def _lift(e: _Entry) -> None:
    """Take a call and its return out of the list."""
    e.prev.next = e.next
    if e.next:
        e.next.prev = e.prev
    r = e.match
    r.prev.next = r.next
    if r.next:
        r.next.prev = r.prev


def _unlift(e: _Entry) -> None:
    r = e.match
    r.prev.next = r
    if r.next:
        r.next.prev = r
    e.prev.next = e
    if e.next:
        e.next.prev = e


class Undecided(Exception):
    """The search ran out of its time budget (refuting a bad history can take exponential time)."""


def _check_key(ops: list[Op], initial: Any, deadline: float) -> bool:
    events = []
    for i, op in enumerate(ops):
        op.id = i
        call = _Entry(op.call, True, op)
        ret = _Entry(op.ret, False, op)
        call.match = ret
        events += [call, ret]
    events.sort(key=lambda e: (e.time, not e.is_call))  # at equal times, calls first: concurrent
    head = _Entry(-math.inf, False, None)  # type: ignore[arg-type]
    prev = head
    for e in events:
        prev.next, e.prev = e, prev
        prev = e
    linearized = 0
    state = initial
    cache: set[tuple[int, Any]] = set()
    stack: list[tuple[_Entry, Any]] = []
    entry = head.next
    steps = 0
    while head.next is not None:
        steps += 1
        if steps % 20_000 == 0 and time.monotonic() > deadline:
            raise Undecided
        if entry is None:
            return False
        if entry.is_call:
            ok, new_state = step(state, entry.op)
            bit = 1 << entry.op.id
            if ok and (linearized | bit, _hashable(new_state)) not in cache:
                cache.add((linearized | bit, _hashable(new_state)))
                stack.append((entry, state))
                state = new_state
                linearized |= bit
                _lift(entry)
                entry = head.next
            else:
                entry = entry.next
        else:
            if not stack:
                return False
            entry, state = stack.pop()
            linearized &= ~(1 << entry.op.id)
            _unlift(entry)
            entry = entry.next
    return True


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def check(history: list[Op], initial: Any = None, budget: float = 60.0) -> dict[str, Any]:
    """{"ok": bool, "bad_keys": [...], "undecided_keys": [...], "checked": n}. A key whose search
    outlives `budget` seconds counts as undecided, and the history as not shown linearizable."""
    by_key: dict[str, list[Op]] = {}
    for op in history:
        if op.outcome == FAILED or (op.outcome == UNKNOWN and op.kind == "read"):
            continue
        if op.outcome == UNKNOWN:
            op = Op(**{**op.__dict__, "ret": math.inf})
        by_key.setdefault(op.key, []).append(op)
    deadline = time.monotonic() + budget
    bad, undecided = [], []
    for key in sorted(by_key):
        try:
            if not _check_key(by_key[key], initial, deadline):
                bad.append(key)
        except Undecided:
            undecided.append(key)
    return {"ok": not bad and not undecided, "bad_keys": bad, "undecided_keys": undecided,
            "checked": sum(len(v) for v in by_key.values())}


def _explains(op: Op, ops: list[Op]) -> bool:
    """Is `op` a write (or cas) of a value that another operation in `ops` read or compared against?"""
    return op.kind != "read" and any(o is not op and (o.value if o.kind == "read" else o.expected) == op.value
                                     for o in ops if o.kind != "write")


def _changes(op: Op) -> bool:
    """Can `op` have changed the register? (a write, or a cas that did not certainly fail its compare)"""
    return op.kind == "write" or (op.kind == "cas" and (op.succeeded or op.outcome == UNKNOWN))


def _anchors(ops: list[Op]) -> dict[int, Op]:
    """For each cas whose compare failed (id(cas) -> op): the change that shows the register held something else,
    the last to return before the cas was called (else the first called while it ran). Without it, a failed cas
    left alone would fail for the wrong reason: its compare against an empty register holds."""
    anchors = {}
    for c in ops:
        if c.kind == "cas" and not _changes(c):
            before = [o for o in ops if _changes(o) and o.ret < c.call]
            during = [o for o in ops if _changes(o) and o.call < c.ret and o is not c]
            if before or during:
                anchors[id(c)] = max(before, key=lambda o: o.ret) if before else min(during, key=lambda o: o.call)
    return anchors


def minimal_failing(ops: list[Op], initial: Any = None, budget: float = 10.0) -> list[Op]:
    """A smallest sub-history of one key's operations that is still not linearizable, in time order: what a reader
    needs to see why. Delta debugging, one operation at a time (drop it if the rest still fails), pass after pass
    until a pass drops nothing. Some operations stay while what needs them does, so that the sub-history fails for
    the history's reason and not for a gap made by the dropping: a write whose value a kept read saw (so a stale
    read is shown with the writes it is stale against), and for a kept cas whose compare failed, the change before
    it (`_anchors`). Unknown operations are kept as unknown. `ops` must fail the check; what is left when the budget
    runs out is returned as it is."""
    deadline = time.monotonic() + budget
    kept = sorted((Op(**{**op.__dict__, "ret": math.inf}) if op.outcome == UNKNOWN else op for op in ops
                   if not (op.outcome == FAILED or (op.outcome == UNKNOWN and op.kind == "read"))),
                  key=lambda o: o.call)
    anchors = _anchors(kept)

    def needed(op: Op) -> bool:
        return _explains(op, kept) or any(anchors.get(id(c)) is op for c in kept)

    dropped = True
    while dropped and time.monotonic() < deadline:
        dropped = False
        i = 0
        while i < len(kept) and time.monotonic() < deadline:
            trial = kept[:i] + kept[i + 1:]
            try:
                fails = not needed(kept[i]) and not _check_key([Op(**o.__dict__) for o in trial], initial, deadline)
            except Undecided:
                return kept
            if fails:
                kept, dropped = trial, True
            else:
                i += 1
    return kept
