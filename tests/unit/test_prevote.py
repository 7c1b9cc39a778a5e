"""PreVote's two decisions: whether to say yes, and when a round is won (Ongaro's thesis §9.6)."""
from kvstore.prevote import PreVote, grant


def test_a_peer_that_heard_from_its_leader_lately_says_no():
    assert not grant(candidate=(3, 10), ours=(3, 10), leader_heard_ago=0.1, min_timeout=0.3, leading=False)
    assert grant(candidate=(3, 10), ours=(3, 10), leader_heard_ago=0.5, min_timeout=0.3, leading=False)


def test_the_leader_itself_says_no():
    assert not grant(candidate=(3, 10), ours=(3, 10), leader_heard_ago=None, min_timeout=0.3, leading=True)


def test_a_candidate_behind_our_log_gets_no_yes():
    """Raft §5.4.1: a later last term wins; with equal last terms, the longer log."""
    assert not grant(candidate=(2, 50), ours=(3, 10), leader_heard_ago=None, min_timeout=0.3, leading=False)
    assert not grant(candidate=(3, 9), ours=(3, 10), leader_heard_ago=None, min_timeout=0.3, leading=False)
    assert grant(candidate=(4, 1), ours=(3, 10), leader_heard_ago=None, min_timeout=0.3, leading=False)


def test_a_round_is_won_by_a_majority_of_yeses_for_its_own_term():
    round_ = PreVote()
    round_.start(current_term=4, members=5, self_id="a")
    assert not round_.on_response(voter="b", term=5, granted=True)
    assert not round_.on_response(voter="c", term=4, granted=True)  # an answer to an older round
    assert not round_.on_response(voter="d", term=5, granted=False)
    assert not round_.on_response(voter="b", term=5, granted=True)  # the same voter twice
    assert round_.on_response(voter="e", term=5, granted=True)
    round_.cancel()
    assert not round_.won and not round_.on_response(voter="c", term=5, granted=True)


def test_alone_a_replica_wins_at_once():
    round_ = PreVote()
    round_.start(current_term=0, members=1, self_id="a")
    assert round_.won
