"""raftkube.testing's recorder and checks, without a cluster: histories made by hand."""
from __future__ import annotations

import threading

import pytest

from raftkube.testing import FAILED, OK, UNKNOWN, History, check_linearizable, check_watch


def test_the_recorder_times_each_operation_and_notes_its_outcome():
    h = History()
    with h.op("write", "k", 1):
        pass
    with h.op("read", "k") as op:
        op.saw(1)
    with pytest.raises(TimeoutError):
        with h.op("write", "k", 2):
            raise TimeoutError
    with pytest.raises(ConnectionRefusedError):
        with h.op("write", "k", 3) as op:
            op.failed()
            raise ConnectionRefusedError
    assert [(o.kind, o.value, o.outcome) for o in h.ops] == [("write", 1, OK), ("read", 1, OK),
                                                             ("write", 2, UNKNOWN), ("write", 3, FAILED)]
    assert all(o.call <= o.ret for o in h.ops)
    assert check_linearizable(h).ok


def test_each_thread_is_a_client_of_its_own():
    h = History()

    def work():
        with h.op("write", "k", threading.get_ident()):
            pass
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.client for o in h.ops) == [1, 2, 3]


def test_a_stale_read_is_caught_and_shown_as_the_smallest_failing_timeline():
    h = History()
    with h.op("write", "k", 1, client=1):
        pass
    for i in range(5):  # noise on another key and on this one, all fine
        with h.op("write", "other", i, client=3):
            pass
    with h.op("write", "k", 2, client=1):
        pass
    with h.op("read", "k", client=1) as op:
        op.saw(2)
    with h.op("read", "k", client=2) as op:
        op.saw(1)  # after 2 was written and read: stale
    result = check_linearizable(h)
    assert not result.ok and result.bad_keys == ["k"]
    assert [(o.kind, o.value) for o in result.minimal] == [("write", 1), ("write", 2), ("read", 1)]
    text = str(result)
    assert "NOT linearizable" in text and "r(k)=1" in text and "client   2" in text


def test_an_unknown_write_may_have_happened_or_not():
    h = History()
    with pytest.raises(TimeoutError):
        with h.op("write", "k", 7, client=1):
            raise TimeoutError
    with h.op("read", "k", client=2) as op:
        op.saw(7)
    with h.op("read", "k", client=2) as op:
        op.saw(7)
    assert check_linearizable(h).ok


def test_check_watch_finds_gaps_duplicates_and_disorder():
    writes = [(5, "a", "PUT", "1"), (6, "b", "PUT", "2"), (7, "a", "DELETE", "")]
    assert check_watch(writes, writes).ok
    missed = check_watch([writes[0], writes[2]], writes)
    assert not missed.ok and "missed" in str(missed)
    twice = check_watch([writes[0], writes[0], writes[1]], writes)
    assert not twice.ok and "duplicate" in str(twice)
    backwards = check_watch([writes[1], writes[0]], writes, start_revision=5)
    assert not backwards.ok and "out of order" in str(backwards)
