"""Histories of a test's own operations, and the checks over them.

    h = cluster.history()
    with h.op("write", "k", 1):
        my_client.put("k", 1)                 # returns: ok; raises: unknown (it may have happened)
    with h.op("read", "k") as op:
        op.saw(my_client.get("k"))            # what the read returned (None: absent)
    with h.op("cas", "k", 2, expected=1) as op:
        op.saw(my_client.cas("k", 1, 2))      # did the compare hold
    result = check_linearizable(h)
    assert result.ok, result                  # the text: the smallest failing sub-history, as a timeline

An operation that raised is recorded with an unknown outcome and the exception goes on (catch it in the test if
the test should go on too); call `op.failed()` before raising when the operation certainly did not happen (a
refused connection, a 4xx): failed operations are left out of the check.
"""
from __future__ import annotations

import asyncio
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from raftkube import history_checks, linearizability, timeline
from raftkube.linearizability import FAILED, OK, UNKNOWN, Op

KINDS = ("read", "write", "cas")


class Recording:
    """The operation being recorded inside `History.op`."""

    def __init__(self, op: Op) -> None:
        self.op = op
        self._failed = False

    def saw(self, value: Any) -> None:
        """A read's result (None: absent), or whether a cas's compare held (a bool)."""
        if self.op.kind == "cas":
            self.op.succeeded = bool(value)
        else:
            self.op.value = value

    def failed(self) -> None:
        """The operation certainly did not take effect (recorded, and left out of the check)."""
        self._failed = True


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _tasks: "weakref.WeakKeyDictionary[asyncio.Task, int]" = field(default_factory=weakref.WeakKeyDictionary,
                                                                   repr=False)
    _threads: threading.local = field(default_factory=threading.local, repr=False)
    _count: int = field(default=0, repr=False)

    def _client(self, client: int | None) -> int:
        """The caller's client number: given, or one per asyncio task (or thread) that records."""
        if client is not None:
            return client
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        with self._lock:
            known = self._tasks.get(task) if task is not None else getattr(self._threads, "client", None)
            if known is None:
                self._count += 1
                known = self._count
                if task is not None:
                    self._tasks[task] = known
                else:
                    self._threads.client = known
            return known

    @contextmanager
    def op(self, kind: str, key: str, value: Any = None, *, expected: Any = None,
           client: int | None = None) -> Iterator[Recording]:
        """Record one operation on a register `key`: its call and return times around the block, its outcome."""
        if kind not in KINDS:
            raise ValueError(f"an operation is one of {', '.join(KINDS)}, not {kind!r}")
        op = Op(key=key, kind=kind, call=time.monotonic(), ret=0.0, value=None if kind == "read" else value,
                expected=expected, client=self._client(client))
        recording = Recording(op)
        try:
            yield recording
        except BaseException:
            op.outcome = FAILED if recording._failed else UNKNOWN
            raise
        else:
            op.outcome = FAILED if recording._failed else OK
        finally:
            op.ret = time.monotonic()
            with self._lock:
                self.ops.append(op)


@dataclass
class LinearizabilityResult:
    ok: bool
    checked: int
    bad_keys: list[str]
    undecided_keys: list[str]
    minimal: list[Op]  # the smallest failing sub-history of the first bad key ([] when ok)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return f"linearizable: {self.checked} operations checked"
        lines = []
        if self.bad_keys:
            lines.append(f"NOT linearizable: key(s) {', '.join(map(str, self.bad_keys))}. No order of these "
                         f"{len(self.minimal)} operations on {self.bad_keys[0]!r} agrees with a single register, "
                         "each taking effect between its call and its return:")
            lines.append(timeline.render(self.minimal))
        if self.undecided_keys:
            lines.append(f"undecided (the search ran out of time): {', '.join(map(str, self.undecided_keys))}")
        return "\n".join(lines)


def check_linearizable(history: History | list[Op], model: str = "register", initial: Any = None,
                       budget: float = 60.0) -> LinearizabilityResult:
    """Is the history linearizable for one register per key (reads, writes, compare-and-swaps)?"""
    if model != "register":
        raise ValueError(f"the only model is 'register', not {model!r}")
    ops = history.ops if isinstance(history, History) else history
    verdict = linearizability.check([Op(**o.__dict__) for o in ops], initial, budget)
    minimal: list[Op] = []
    if verdict["bad_keys"]:
        first = verdict["bad_keys"][0]
        minimal = linearizability.minimal_failing([o for o in ops if o.key == first], initial)
    return LinearizabilityResult(verdict["ok"], verdict["checked"], verdict["bad_keys"], verdict["undecided_keys"],
                                 minimal)


@dataclass
class WatchResult:
    ok: bool
    problems: list[str]

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return "the watch saw every write, in order, once" if self.ok else "\n".join(self.problems)


def check_watch(events: list[tuple[int, str, str, str]], writes: list[tuple[int, str, str, str]],
                start_revision: int | None = None) -> WatchResult:
    """Did a watch see, from `start_revision` (default: its first event's) to its last event, exactly the
    `writes` (revision, key, "PUT"|"DELETE", value) in that range, in revision order, none twice?"""
    start = start_revision if start_revision is not None else (events[0][0] if events else 0)
    problems = history_checks.check_watch(list(events), start, sorted(writes))
    return WatchResult(not problems, problems)


__all__ = ["History", "Recording", "LinearizabilityResult", "WatchResult", "check_linearizable", "check_watch",
           "OK", "FAILED", "UNKNOWN"]
