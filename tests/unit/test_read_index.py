"""ReadIndex rounds (kvstore/read_index.py): batching, majorities, resends, terms."""
from kvstore.read_index import RESEND_AFTER, LeaderRounds, Rounds

FOLLOWERS = ["b", "c"]


def test_reads_queued_while_a_round_is_out_wait_for_the_next_round():
    rounds = LeaderRounds()
    rounds.add("r1")
    rounds.add("r2")
    first = rounds.start(now=0.0, index=7)
    assert first.waiters == ["r1", "r2"] and first.index == 7
    rounds.add("r3")
    assert rounds.start(now=0.0, index=8) is None  # one round at a time
    assert rounds.on_ack("b", first.number, others=FOLLOWERS) is first
    second = rounds.start(now=0.0, index=9)
    assert second.waiters == ["r3"] and second.index == 9 and second.number > first.number


def test_a_round_needs_a_majority_of_the_voters_the_leader_included():
    rounds = LeaderRounds()
    rounds.add("r")
    r = rounds.start(now=0.0, index=1)
    five = ["b", "c", "d", "e"]
    assert rounds.on_ack("b", r.number, others=five) is None  # 2 of 5
    assert rounds.on_ack("b", r.number, others=five) is None  # the same voter twice is still 2
    assert rounds.on_ack("z", r.number, others=five) is None  # not a voter
    assert rounds.on_ack("c", r.number, others=five) is r  # 3 of 5


def test_a_leader_alone_confirms_at_once():
    rounds = LeaderRounds()
    rounds.add("r")
    r = rounds.start(now=0.0, index=3)
    assert rounds.confirmed([]) is r


def test_a_yes_to_an_earlier_round_does_not_confirm_a_later_one():
    """The question must be asked after the read began: a yes to an older round proves nothing about it."""
    rounds = LeaderRounds()
    rounds.add("r1")
    old = rounds.start(now=0.0, index=1)
    rounds.on_ack("b", old.number, others=FOLLOWERS)
    rounds.add("r2")
    new = rounds.start(now=0.0, index=2)
    assert rounds.on_ack("b", old.number, others=FOLLOWERS) is None  # a late duplicate of the old yes
    assert rounds.on_ack("c", new.number, others=FOLLOWERS) is new


def test_an_unanswered_round_is_asked_again_under_a_new_number_and_either_answer_counts():
    rounds = LeaderRounds()
    rounds.add("r")
    r = rounds.start(now=0.0, index=4)
    first = r.number
    assert rounds.resend(now=RESEND_AFTER / 2) is None
    assert rounds.resend(now=RESEND_AFTER) is r and r.number > first and r.index == 4
    assert rounds.on_ack("b", first, others=FOLLOWERS) is r  # a busy follower's late yes to the first asking


def test_a_new_term_forgets_every_yes_and_hands_back_every_waiter():
    rounds = LeaderRounds()
    rounds.add("r1")
    r = rounds.start(now=0.0, index=1)
    rounds.on_ack("b", r.number, others=["b", "c", "d", "e"])
    rounds.add("r2")
    assert sorted(rounds.abandon()) == ["r1", "r2"]
    rounds.add("r3")
    again = rounds.start(now=0.0, index=2)
    assert rounds.on_ack("c", again.number, others=["b", "c", "d", "e"]) is None  # b's old yes is gone


def test_a_follower_takes_an_answer_to_any_question_of_its_round_but_none_of_an_earlier_round():
    rounds = Rounds()
    rounds.add("r0")
    earlier = rounds.start(now=0.0)
    assert rounds.answered(earlier.number) is earlier
    rounds.add("r1")
    r = rounds.start(now=0.0)
    first = r.number
    rounds.resend(now=RESEND_AFTER)
    assert rounds.answered(earlier.number) is None  # a late duplicate for the earlier round
    assert rounds.answered(first) is r  # the answer to the first asking, late: it counts all the same
    assert rounds.answered(r.number) is None


def test_a_leader_whose_commit_index_outran_its_log_still_serves_reads():
    """Never in Raft, but the skip-fsync lab loses journals while pysyncobj's saved commit index survives: the
    read index is then the last entry, and the leader's no-op there counts as committed in its term."""
    from types import SimpleNamespace

    from kvstore.replica import Replica
    log = {i: (b"", i, 3 if i == 7 else 2) for i in range(1, 8)}
    r = SimpleNamespace(raftCommitIndex=10, raftCurrentTerm=3, _last_index=lambda: 7, _entry_at=log.get)
    r._read_index = lambda: Replica._read_index(r)
    assert Replica._read_index(r) == 7 and Replica._committed_in_term(r)
    r.raftCommitIndex = 6  # the usual case: the no-op at 7 not committed yet
    assert Replica._read_index(r) == 6 and not Replica._committed_in_term(r)
