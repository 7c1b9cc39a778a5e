"""The async face of the store: what the KV gateway and the kube API call.

How a write travels (the names are this package's):
1. `Store.put(req)` wraps the request in a command with a fresh request id and queues it;
2. `_maybe_flush` packs everything queued into one msgpack batch and proposes it with
   `Replica.consumer.apply_batch` (forwarded to the leader by pysyncobj when we follow), while at
   most `max_inflight` batches are on their way: requests that arrive meanwhile wait for the next
   batch, so one Raft round and one fsync serve many requests (group commit);
3. the leader appends the entry, each replica syncs its journal before it acknowledges
   (kvstore/journal.py), and a majority commits it;
4. every replica runs `StateMachine.apply` on each command in log order and hands the events to
   its `WatchHub` (kvstore/watch.py);
5. on the proposing replica the batch's callback resolves each request's future with its result.

A proposal that fails before reaching the log is queued again, with the same request id, until the
request's deadline; the state machine applies an id once, so a retry after an unknown outcome
cannot apply twice. At the deadline the caller gets a "no quorum" error, which says whether the
request may still be applied.
Linearizable reads ride the same pipeline as a no-op barrier shared by every read queued with it.
"""
from __future__ import annotations

import asyncio
import itertools
from collections import deque
import logging
import os
import time
from typing import Any

import msgpack
from pysyncobj.config import FAIL_REASON

from kvstore import errors
from kvstore.errors import KVError, KVFailure
from kvstore.mvcc import Request, Result

log = logging.getLogger("raftkube.store")

# Failures after which the command is known not to be in the log: safe to propose again.
_NOT_IN_LOG = {FAIL_REASON.QUEUE_FULL, FAIL_REASON.MISSING_LEADER, FAIL_REASON.NOT_LEADER,
               FAIL_REASON.REQUEST_DENIED, FAIL_REASON.DISCARDED}
MAX_BATCH_BYTES = 4 << 20
RETRY_DELAY = 0.02


class _Pending:
    __slots__ = ("command", "future", "size", "deadline", "in_flight", "maybe_in_log")

    def __init__(self, command: dict | None, future: asyncio.Future, size: int, deadline: float):
        self.command = command  # None for a read barrier
        self.future = future
        self.size = size
        self.deadline = deadline
        self.in_flight = False
        self.maybe_in_log = False  # an earlier proposal of it ended with an unknown outcome

    @property
    def maybe_applied(self) -> bool:
        return self.in_flight or self.maybe_in_log


class Store:
    def __init__(self, replica, *, name: str, deadline: float = 2.0, max_inflight: int = 4) -> None:
        self.replica = replica
        self.name = name
        self.deadline = deadline
        self.max_inflight = max_inflight
        self._loop = asyncio.get_running_loop()
        self._queue: deque[_Pending] = deque()
        self._barrier: _Pending | None = None  # the queued barrier new reads join
        self._inflight = 0
        self._ids = itertools.count(1)
        self._nonce = os.urandom(8)
        self._retry_handle: asyncio.TimerHandle | None = None

    @property
    def machine(self):
        return self.replica.consumer.machine

    @property
    def lock(self):
        return self.replica.consumer.lock

    # -- writes ---------------------------------------------------------------------------

    async def propose(self, req: Request, *, timeout: float | None = None) -> Result:
        """Commit `req` through Raft and return its result (a KVError is raised as KVFailure)."""
        rid = self._nonce + next(self._ids).to_bytes(8, "big")
        command = {"id": rid, "req": req}
        size = len(msgpack.packb(command, use_bin_type=True))
        result = await self._submit(command, size, timeout)
        if isinstance(result, KVError):
            raise KVFailure(result)
        return result

    async def read_index(self, *, timeout: float | None = None) -> None:
        """Wait until the local replica has applied everything committed before this call.

        Reads join the barrier that is still queued; once it is proposed, later reads need a
        new one (a barrier proposed before a read began says nothing about writes before it)."""
        p = self._barrier
        if p is None:
            p = self._barrier = self._pending(None, 8, timeout)
            self._queue.append(p)
            self._maybe_flush()
        await self._wait(p)

    async def _submit(self, command: dict, size: int, timeout: float | None) -> Result:
        p = self._pending(command, size, timeout)
        self._queue.append(p)
        self._maybe_flush()
        return await self._wait(p)

    def _pending(self, command: dict | None, size: int, timeout: float | None) -> _Pending:
        deadline = time.monotonic() + (timeout or self.deadline)
        return _Pending(command, self._loop.create_future(), size, deadline)

    async def _wait(self, p: _Pending) -> Result:
        remaining = p.deadline - time.monotonic()
        try:
            return await asyncio.wait_for(asyncio.shield(p.future), max(remaining, 0.001))
        except asyncio.TimeoutError:
            self._give_up(p)
            raise KVFailure(self._no_quorum_error(p)) from None

    def _give_up(self, p: _Pending) -> None:
        if p in self._queue:
            self._queue.remove(p)
        if self._barrier is p:
            self._barrier = None
        if not p.future.done():
            p.future.cancel()

    def _maybe_flush(self) -> None:
        while self._queue and self._inflight < self.max_inflight:
            batch: list[_Pending] = []
            size = 0
            while self._queue and (not batch or size + self._queue[0].size <= MAX_BATCH_BYTES):
                p = self._queue.popleft()
                if p.future.done():
                    continue
                batch.append(p)
                size += p.size
                if p is self._barrier:
                    self._barrier = None  # reads arriving from now on need a later barrier
            if not batch:
                return
            self._propose(batch)

    def _propose(self, batch: list[_Pending]) -> None:
        commands = [p.command if p.command is not None else {"req": {"op": "noop"}} for p in batch]
        packed = msgpack.packb(commands, use_bin_type=True)
        for p in batch:
            p.in_flight = True
        self._inflight += 1

        def on_done(results: Any, err: int) -> None:  # on the Raft thread
            self._loop.call_soon_threadsafe(self._on_batch_done, batch, results, err)

        self.replica.consumer.apply_batch(packed, callback=on_done)

    def _on_batch_done(self, batch: list[_Pending], results: Any, err: int) -> None:
        self._inflight -= 1
        for p in batch:
            p.in_flight = False
        if err == FAIL_REASON.SUCCESS:
            for p, result in zip(batch, results):
                if not p.future.done():
                    p.future.set_result(result)
        else:
            log.debug("%s: batch of %d failed with pysyncobj reason %s; retrying", self.name, len(batch), err)
            retry = [p for p in batch if not p.future.done()]
            for p in retry:
                p.maybe_in_log |= err not in _NOT_IN_LOG
            self._queue.extendleft(reversed(retry))  # first in line, in their order
            if self._retry_handle is None:
                self._retry_handle = self._loop.call_later(RETRY_DELAY, self._retry)
            return
        self._maybe_flush()

    def _retry(self) -> None:
        self._retry_handle = None
        self._maybe_flush()

    def _no_quorum_error(self, p: _Pending) -> KVError:
        status = self.raft_status()
        if p.command is None:
            outcome = ("a linearizable read needs one; a serializable read answers from this master's "
                       "possibly stale copy")
        elif p.maybe_applied:
            outcome = "the request may still be applied: read before you retry"
        else:
            outcome = "the request was not applied"
        return errors.unavailable(
            f"etcdserver: request timed out: no quorum: master {self.name} could not get a majority "
            f"of the masters to commit within {self.deadline:g}s (raft leader: {status.get('leader') or 'none'}, "
            f"term {status.get('raft_term', '?')}); {outcome}")

    # -- reads ----------------------------------------------------------------------------

    async def range(self, req: Request, *, serializable: bool = False) -> Result:
        if not serializable:
            await self.read_index()
        with self.lock:
            result = self.machine.range(req)
        if isinstance(result, KVError):
            raise KVFailure(result)
        return result

    # -- status ---------------------------------------------------------------------------

    def raft_status(self) -> dict[str, Any]:
        for _ in range(3):
            try:
                status = self.replica.getStatus()
                break
            except RuntimeError:  # a dict changed size under us on the Raft thread
                continue
        else:
            return {}
        leader = status.get("leader")
        return {
            "state": {0: "follower", 1: "candidate", 2: "leader"}.get(status["state"], "unknown"),
            "leader": leader.id if leader is not None else None,
            "raft_term": status["raft_term"],
            "commit_idx": status["commit_idx"],
            "last_applied": status["last_applied"],
            "has_quorum": status["has_quorum"],
            "self": status["self"].id,
        }
