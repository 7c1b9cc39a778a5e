"""A follower keeps what a leader resends and drops only from the first conflicting entry (Raft §5.3)."""
from kvstore.log_matching import plan_append, unvouched


def log(*terms):
    """Our log: entry i (from 1) has term terms[i-1]."""
    entries = [(b"c%d" % i, i, t) for i, t in enumerate(terms, 1)]
    return (lambda idx: entries[idx - 1] if 1 <= idx <= len(entries) else None), len(entries)


def append(prev, prev_term, entries, commit=0, term=1):
    return {"type": "append_entries", "term": term, "commit_index": commit, "prevLogIdx": prev,
            "prevLogTerm": prev_term, "entries": [(b"c%d" % i, i, t) for i, t in entries]}


def test_a_resend_shorter_than_our_tail_keeps_the_tail_and_is_acknowledged_by_us():
    """The issue's case: entries 1-10 held, the leader resends 5-7 in its first message."""
    entry_at, last = log(*[1] * 10)
    plan = plan_append(append(4, 1, [(5, 1), (6, 1), (7, 1)], commit=9), entry_at, last)
    assert "prevLogIdx" not in plan.message and "entries" not in plan.message  # pysyncobj deletes nothing
    assert plan.ack == 7
    assert plan.message["commit_index"] == 7  # only what this message vouches for


def test_a_resend_that_ends_where_our_log_ends_deletes_nothing():
    """pysyncobj deleted the entries and wrote them again: a truncated journal, acknowledged entries off the disk
    until the next sync, and the fsync-waiting acknowledgements dropped as after a conflict."""
    entry_at, last = log(1, 1, 1, 1, 1)
    plan = plan_append(append(3, 1, [(4, 1), (5, 1)], commit=5), entry_at, last)
    assert "prevLogIdx" not in plan.message and "entries" not in plan.message
    assert plan.ack == 5 and plan.message["commit_index"] == 5


def test_a_heartbeat_behind_our_tail_deletes_nothing():
    entry_at, last = log(1, 1, 1, 1)
    plan = plan_append(append(2, 1, []), entry_at, last)
    assert plan.ack == 2 and "prevLogIdx" not in plan.message


def test_a_conflict_is_cut_from_the_first_conflicting_entry_only():
    entry_at, last = log(1, 1, 1, 1, 1, 1, 1)  # 6 and 7 never committed
    plan = plan_append(append(3, 1, [(4, 1), (5, 1), (6, 2), (7, 2)]), entry_at, last)
    assert plan.ack is None
    assert (plan.message["prevLogIdx"], plan.message["prevLogTerm"]) == (5, 1)
    assert [e[1:] for e in plan.message["entries"]] == [(6, 2), (7, 2)]


def test_new_entries_past_our_end_pass_through():
    entry_at, last = log(1, 1, 1)
    message = append(3, 1, [(4, 1), (5, 1)], commit=5)
    plan = plan_append(message, entry_at, last)
    assert plan.ack is None and plan.message == message


def test_a_mismatched_prev_is_left_to_pysyncobj_to_refuse():
    entry_at, last = log(1, 1, 1, 1)
    message = append(2, 3, [])
    assert plan_append(message, entry_at, last).message == message


def test_the_commit_index_never_passes_what_the_message_vouches_for():
    entry_at, last = log(1, 1, 1, 1, 1)  # 4 and 5 may differ from the leader's
    plan = plan_append(append(3, 1, [], commit=100), entry_at, last)
    assert plan.message["commit_index"] == 3


def test_a_piece_of_a_snapshot_moves_no_commit_index():
    piece = {"type": "append_entries", "term": 2, "commit_index": 100, "serialized": (b"...", True, False)}
    assert unvouched(piece, 6) == {**piece, "commit_index": 6}
    assert unvouched({**piece, "commit_index": 4}, 6)["commit_index"] == 4
