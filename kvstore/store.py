"""The async face of the store: what the KV gateway and the kube API call.

How a write travels (the names are this package's):
1. `Store.propose(req)` wraps the request in a command with a fresh request id and queues it;
2. `_maybe_flush` packs everything queued into one msgpack batch and `_propose` hands it to
   `KVConsumer.apply_batch`, pysyncobj's replicated method (forwarded to the leader by pysyncobj when
   we follow), while at most `max_inflight` batches are on their way: requests that arrive meanwhile
   wait for the next batch, so one Raft round and one fsync serve many requests (group commit);
3. the leader appends the entry, each replica syncs its journal before it acknowledges
   (kvstore/journal.py), and a majority commits it;
4. every replica runs `StateMachine.apply` on each command in log order and hands the events to
   its `WatchHub` (kvstore/watch.py);
5. on the proposing replica the batch's callback resolves each request's future with its result.

A proposal that fails before reaching the log is queued again, with the same request id, until the
request's deadline; the state machine applies an id once, so a retry after an unknown outcome
cannot apply twice. At the deadline the caller gets a "no quorum" error, which says whether the
request may still be applied.
Linearizable reads take no log entry: `read_index` asks the replica for ReadIndex (kvstore/read_index.py:
the leader confirms with a majority that it still leads, and the read waits until its replica has applied
the leader's commit index). docs/raft.md explains each step in Raft's terms.
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
from kvstore.mechanisms import ALL, Mechanisms
from kvstore.metrics import StoreStats
from kvstore.mvcc import Request, Result
from kvstore.read_index import ReadIndexLost

log = logging.getLogger("raftkube.store")

# Failures after which the command is known not to be in the log: safe to propose again.
_NOT_IN_LOG = {FAIL_REASON.QUEUE_FULL, FAIL_REASON.MISSING_LEADER, FAIL_REASON.NOT_LEADER,
               FAIL_REASON.REQUEST_DENIED, FAIL_REASON.DISCARDED}
MAX_BATCH_BYTES = 4 << 20
MAX_COMMAND_BYTES = 8 << 20  # one request, packed: a Raft entry must stay below replica.MAX_MESSAGE_BYTES
RETRY_DELAY = 0.02


class _Pending:
    """One request on its way: its packed command, the future its callers await, its timer."""

    __slots__ = ("packed", "future", "timer", "in_flight", "maybe_in_log")

    def __init__(self, packed: bytes, future: asyncio.Future) -> None:
        self.packed = packed  # the msgpack command
        self.future = future
        self.timer: asyncio.TimerHandle | None = None
        self.in_flight = False
        self.maybe_in_log = False  # an earlier proposal of it ended with an unknown outcome

    @property
    def maybe_applied(self) -> bool:
        return self.in_flight or self.maybe_in_log


class _Batch:
    """One proposal of queued requests, holding one of the Store's `max_inflight` slots until its answer
    comes or its deadline passes."""

    __slots__ = ("requests", "started", "timer", "holds_slot")

    def __init__(self, requests: list[_Pending]) -> None:
        self.requests = requests
        self.started = time.perf_counter()
        self.timer: asyncio.TimerHandle | None = None
        self.holds_slot = True


def pack_batch(parts: list[bytes]) -> bytes:
    """A msgpack array of already packed commands (what msgpack.packb(list) would give)."""
    n = len(parts)
    head = bytes([0x90 | n]) if n < 16 else b"\xdc" + n.to_bytes(2, "big") if n < 1 << 16 \
        else b"\xdd" + n.to_bytes(4, "big")
    return head + b"".join(parts)


class Store:
    def __init__(self, replica, *, name: str, deadline: float = 2.0, max_inflight: int = 2,
                 mechanisms: Mechanisms = ALL) -> None:
        self.replica = replica
        self.name = name
        self.deadline = deadline
        self.max_inflight = max_inflight
        self.mechanisms = mechanisms  # all on, but in a lab (kvstore/mechanisms.py)
        self._loop = asyncio.get_running_loop()
        self._queue: deque[_Pending] = deque()
        self._inflight = 0
        self._ids = itertools.count(1)
        self._nonce = os.urandom(8)
        self._retry_handle: asyncio.TimerHandle | None = None
        self._closed = False
        self.stats = StoreStats()  # plain counters; kvstore/metrics.py turns them into Prometheus families

    def close(self) -> None:
        """Propose nothing more (the replica is going away)."""
        self._closed = True
        if self._retry_handle is not None:
            self._retry_handle.cancel()

    @property
    def machine(self):
        return self.replica.consumer.machine

    # -- writes ---------------------------------------------------------------------------

    async def propose(self, req: Request, *, timeout: float | None = None) -> Result:
        """Commit `req` through Raft and return its result (a KVError is raised as KVFailure)."""
        rid = self._nonce + next(self._ids).to_bytes(8, "big")
        packed = msgpack.packb({"id": rid, "req": req})
        if len(packed) > MAX_COMMAND_BYTES:
            raise KVFailure(errors.REQUEST_TOO_LARGE)
        p = self._new(packed, timeout)
        self._enqueue(p)
        result = await p.future  # a caller that goes away cancels it: it is then not proposed, or its result dropped
        if isinstance(result, KVError):
            raise KVFailure(result)
        return result

    async def read_index(self, *, timeout: float | None = None) -> None:
        """Wait until the local replica has applied everything committed before this call (ReadIndex), asking
        again while the Raft leader changes, until the deadline."""
        deadline = self._loop.time() + (timeout or self.deadline)
        while True:
            try:
                await asyncio.wait_for(self.replica.read_index(), deadline - self._loop.time())
                return
            except ReadIndexLost:
                if self._loop.time() + RETRY_DELAY < deadline:
                    await asyncio.sleep(RETRY_DELAY)  # a new leader needs a moment to commit its first entry
                    continue
            except asyncio.TimeoutError:
                pass
            self.stats.fail("deadline")
            raise KVFailure(self._no_quorum_error(
                "a linearizable read needs one; a serializable read answers from this master's possibly stale copy"))

    def _new(self, packed: bytes, timeout: float | None) -> _Pending:
        p = _Pending(packed, self._loop.create_future())
        p.timer = self._loop.call_later(timeout or self.deadline, self._expire, p)
        return p

    def _enqueue(self, p: _Pending) -> None:
        self._queue.append(p)
        self._maybe_flush()

    def _expire(self, p: _Pending) -> None:
        """The deadline passed without a commit: no quorum, as far as this master can tell."""
        if p.future.done():
            return
        if p in self._queue:
            self._queue.remove(p)
        self.stats.fail("deadline")
        outcome = "the request may still be applied: read before you retry" if p.maybe_applied \
            else "the request was not applied"
        p.future.set_exception(KVFailure(self._no_quorum_error(outcome)))

    def _maybe_flush(self) -> None:
        while not self._closed and self._queue and self._inflight < self.max_inflight:
            batch: list[_Pending] = []
            size = 0
            while self._queue and (not batch or size + len(self._queue[0].packed) <= MAX_BATCH_BYTES):
                p = self._queue.popleft()
                if p.future.done():
                    continue
                batch.append(p)
                size += len(p.packed)
            if not batch:
                return
            self._propose(batch)

    def _propose(self, requests: list[_Pending]) -> None:
        for p in requests:
            p.in_flight = True
        self._inflight += 1
        batch = _Batch(requests)
        batch.timer = self._loop.call_later(self.deadline, self._give_up, batch)

        def on_done(results: Any, err: int) -> None:  # inside a Raft tick: finish outside it
            self._loop.call_soon(self._on_batch_done, batch, results, err)

        self.replica.consumer.apply_batch(pack_batch([p.packed for p in requests]), callback=on_done)
        if not self.mechanisms.ack_after_commit:
            self._answer_now(requests)
        self.replica.wake()

    def _answer_now(self, requests: list[_Pending]) -> None:
        """The early-ack lab: answer every put and txn as soon as it is proposed, with what it would do to this
        replica's state now, before a majority (or anyone) has it. Reads and other requests still wait."""
        for p in requests:
            if p.future.done():
                continue
            req = msgpack.unpackb(p.packed, raw=False)["req"]
            if req.get("op") == "txn":
                p.future.set_result(self.machine.dry_txn(req))
            elif req.get("op") == "put":
                p.future.set_result({"prev_kv": None, "revision": self.machine.revision + 1})

    def _free_slot(self, batch: "_Batch") -> bool:
        """Give the batch's slot back, once; False if it was given back already."""
        if not batch.holds_slot:
            return False
        batch.holds_slot = False
        batch.timer.cancel()
        self._inflight -= 1
        return True

    def _give_up(self, batch: "_Batch") -> None:
        """A batch's answer did not come within the deadline (pysyncobj drops a forwarded command when
        the link to the leader breaks, and a snapshot install skips its callback): free its slot rather
        than wait for an answer that may never come. Its requests may be in the log: they go back in
        line with their ids, and the state machine applies an id once."""
        if self._free_slot(batch):
            self.stats.fail("lost")
            self._requeue(batch.requests, maybe_in_log=True)

    def _on_batch_done(self, batch: "_Batch", results: Any, err: int) -> None:
        if not self._free_slot(batch):  # an answer after _give_up: a success still tells the outcome
            if err == FAIL_REASON.SUCCESS:
                self._resolve(batch.requests, results)
            return
        self.stats.proposal_done(batch.started, err)
        if err == FAIL_REASON.SUCCESS:
            self._resolve(batch.requests, results)
            self._maybe_flush()
        else:  # proposed again after RETRY_DELAY
            log.debug("%s: batch of %d failed with pysyncobj reason %s; retrying", self.name, len(batch.requests), err)
            self._requeue(batch.requests, maybe_in_log=err not in _NOT_IN_LOG)

    def _resolve(self, batch: list[_Pending], results: list[Any]) -> None:
        for p, result in zip(batch, results):
            p.in_flight = False
            if not p.future.done():
                p.future.set_result(result)
                p.timer.cancel()

    def _requeue(self, batch: list[_Pending], *, maybe_in_log: bool) -> None:
        retry = [p for p in batch if p.in_flight and not p.future.done()]
        for p in retry:
            p.in_flight = False
            p.maybe_in_log |= maybe_in_log
        self._queue.extendleft(reversed(retry))  # first in line, in their order
        if retry and self._retry_handle is None:
            self._retry_handle = self._loop.call_later(RETRY_DELAY, self._retry)

    def _retry(self) -> None:
        self._retry_handle = None
        self._maybe_flush()

    def _no_quorum_error(self, outcome: str) -> KVError:
        status = self.raft_status()
        return errors.unavailable(
            f"etcdserver: request timed out: no quorum: master {self.name} could not get a majority "
            f"of the masters to commit within {self.deadline:g}s (raft leader: {status.get('leader') or 'none'}, "
            f"term {status.get('raft_term', '?')}); {outcome}")

    # -- reads ----------------------------------------------------------------------------

    async def range(self, req: Request, *, serializable: bool = False) -> Result:
        if not self.replica.state_loaded.is_set():  # an empty store is no state this master ever had
            raise KVFailure(errors.unavailable(f"etcdserver: master {self.name} is still loading its snapshot and "
                                               f"journal; try again, or ask another master"))
        if not (serializable or self._reads_locally()):
            await self.read_index()
        result = self.machine.range(req)
        if isinstance(result, KVError):
            raise KVFailure(result)
        return result

    def _reads_locally(self) -> bool:
        """Only in a lab: a linearizable read answered from this replica without ReadIndex. With the stale-reads
        lab every master does it; with the deposed-leader lab a leader does, trusting that it still leads."""
        m = self.mechanisms
        return not m.read_index or (not m.leader_confirms and self.replica._isLeader())

    # -- status ---------------------------------------------------------------------------

    def raft_status(self) -> dict[str, Any]:
        status = self.replica.getStatus()
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
