"""ReadIndex (Raft thesis §6.4; etcd's raft, ReadOnlySafe): a linearizable read without a log entry.

A linearizable read must see every write acknowledged before it began. The leader has every committed entry, but
a leader deposed a moment ago does not know it yet, and a follower may lag. So a read goes this way:

1. The leader notes its commit index as the read's index. It does so only once it has committed an entry of its
   own term (pysyncobj appends a no-op when it is elected): before that, its commit index may lag behind what a
   previous leader acknowledged.
2. It asks every follower "am I still your leader?" (a `read_index` message with a round number and its term).
   A follower of the same term says yes. Once a majority, itself included, said yes to a question asked after
   the read began, no other leader was elected before that moment: that would take a majority in a higher term,
   and a member's term never goes down. So nothing was committed that the read's index does not cover.
3. The read waits until its replica has applied that index, then answers from the replica's state machine.

A follower's read asks the leader for an index (`read_index_request`) and waits until it has applied that index
itself. Reads share rounds: the reads that arrive while a round is on its way wait for the next one, so a burst
of reads costs one small message to each follower and back, with no entry, no fsync and no apply. A round that
gets no answer (a message lost with a connection) is asked again under a new number after RESEND_AFTER seconds;
an answer to any of its numbers counts, since each was asked after the round's reads began (a busy leader may
answer later than RESEND_AFTER every time).

Pure: the replica (kvstore/replica.py) sends the messages, passes the clock in, and says who the voters are.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

RESEND_AFTER = 0.1  # seconds without an answer before a round is asked again


class ReadIndexLost(Exception):
    """The replica's role or term changed before the read's round was answered: ask again."""


@dataclass
class Round:
    """Reads waiting for one answer: `waiters` are the replica's (futures, or a follower's requests)."""

    number: int  # the latest number it was asked under
    index: int  # the leader's commit index when the round began; a follower learns it from the answer
    waiters: list[Any]
    sent: float  # when the question last went out
    first: int  # the number it was first asked under: an answer to it or to any later one counts


@dataclass
class Rounds:
    """Reads queued for the next round, and at most one round on its way."""

    queued: list[Any] = field(default_factory=list)
    current: Round | None = None
    _numbers: int = 0  # never reused, so an answer to an old question is never taken for a new one

    def add(self, waiter: Any) -> None:
        self.queued.append(waiter)

    def start(self, *, now: float, index: int = 0) -> Round | None:
        """A new round when reads are queued and none is on its way, else None."""
        if self.current is not None or not self.queued:
            return None
        number = self._next()
        self.current = Round(number, index, self.queued, now, first=number)
        self.queued = []
        return self.current

    def resend(self, *, now: float) -> Round | None:
        """The round on its way, under a new number, if it went unanswered for RESEND_AFTER. An answer to the new
        number confirms the round all the same: the new question, too, was asked after its reads began."""
        r = self.current
        if r is None or now - r.sent < RESEND_AFTER:
            return None
        r.number, r.sent = self._next(), now
        return r

    def answered(self, number: int) -> Round | None:
        """The round this answers, taken off the way; None for an answer to an earlier round's question."""
        r = self.current
        if r is None or number < r.first:
            return None
        self.current = None
        return r

    def abandon(self) -> list[Any]:
        """Every waiter, queued or on its way (the replica's role or term changed)."""
        waiters = self.queued + (self.current.waiters if self.current else [])
        self.queued, self.current = [], None
        return waiters

    def _next(self) -> int:
        self._numbers += 1
        return self._numbers


@dataclass
class LeaderRounds(Rounds):
    """The leader's rounds, and the highest round number each follower said yes to in this term."""

    acked: dict[str, int] = field(default_factory=dict)

    def on_ack(self, voter: str, number: int, *, others: Iterable[str]) -> Round | None:
        """A follower of this term said yes to round `number`: the round on its way, once a majority of the
        voters (`others` and the leader) said yes to it or to a later round."""
        if number > self.acked.get(voter, 0):
            self.acked[voter] = number
        return self.confirmed(others)

    def confirmed(self, others: Iterable[str]) -> Round | None:
        r = self.current
        if r is None:
            return None
        voters = yes = 1  # the leader
        for other in others:
            voters += 1
            yes += self.acked.get(other, 0) >= r.first
        if yes * 2 <= voters:
            return None
        self.current = None
        return r

    def abandon(self) -> list[Any]:
        self.acked.clear()  # a yes from another term proves nothing in the next
        return super().abandon()
