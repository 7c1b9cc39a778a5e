"""PreVote (Ongaro's thesis §9.6, as etcd's raft does it): ask before raising the term.

pysyncobj starts an election as soon as a follower's election timer runs out: it raises its term
and asks for votes. A follower cut off from the others for a while keeps doing that, and when the
network heals its higher term forces the healthy leader to step down: an election, and writes
blocked meanwhile, for nothing. With PreVote, a follower whose timer runs out first asks the others
"would you vote for me in the next term?" without changing anything. A peer says yes only if

- the candidate's log is at least as up to date as its own (the election rule of Raft §5.4.1), and
- it has not heard from a leader within the minimum election timeout (the leader is alive as far as
  it knows: etcd's CheckQuorum lease), and it is not the leader itself.

Only with a majority of yeses does the real election begin. A cut-off follower never gets one, so
its term stays where it was and the leader keeps its office when the link comes back.

The leader's half of CheckQuorum is pysyncobj's `leaderFallbackTimeout`: a leader that has not heard
from a majority within it steps down. A leadership transfer (TimeoutNow) skips the pre-vote, as in etcd.

Pure: the replica passes the clock in (kvstore/replica.py sends and receives the messages).
"""
from __future__ import annotations

from dataclasses import dataclass, field

LogPosition = tuple[int, int]  # (term of the last entry, index of the last entry): compared as a tuple


def grant(*, candidate: LogPosition, ours: LogPosition, leader_heard_ago: float | None, min_timeout: float,
          leading: bool) -> bool:
    """Would this replica vote for the candidate in the next term?"""
    if leading:
        return False
    if leader_heard_ago is not None and leader_heard_ago < min_timeout:
        return False
    return candidate >= ours


@dataclass
class PreVote:
    """One round of asking, from this replica's side."""

    term: int = 0  # the term the round asks about (our current term + 1)
    members: int = 1  # voting members, ourselves included
    granted: set[str] = field(default_factory=set)
    won: bool = False

    def start(self, *, current_term: int, members: int, self_id: str) -> None:
        self.term = current_term + 1
        self.members = members
        self.granted = {self_id}
        self.won = self._majority()

    def on_response(self, *, voter: str, term: int, granted: bool) -> bool:
        """Count an answer; True the moment the round is won."""
        if self.won or term != self.term or not granted:
            return False
        self.granted.add(voter)
        self.won = self._majority()
        return self.won

    def cancel(self) -> None:
        """A leader spoke up: answers still on their way must not start an election."""
        self.term = 0
        self.won = False

    def _majority(self) -> bool:
        return len(self.granted) * 2 > self.members
