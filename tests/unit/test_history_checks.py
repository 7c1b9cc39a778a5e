"""The watch, durability and availability checks on small hand-made records."""
from types import SimpleNamespace as NS

from kvstore.client import b64
from raftkube.history_checks import availability, check_durability, check_leases, check_revisions, check_watch
from raftkube.linearizability import FAILED, OK, UNKNOWN
from raftkube.workload import value_for

REF = [(5, "a", "PUT", "1"), (6, "b", "PUT", "2"), (7, "a", "PUT", "3"), (8, "c", "PUT", "4")]


def test_a_watcher_that_saw_the_history_from_its_start_is_fine():
    assert check_watch(REF[1:3], 6, REF) == []
    assert check_watch([], 6, REF) == []


def test_gaps_duplicates_disorder_and_invented_events_are_reported():
    assert "missed" in check_watch([REF[0], REF[2]], 5, REF)[0]
    assert "duplicate" in check_watch([REF[0], REF[0]], 5, REF)[0]
    assert any("out of order" in p for p in check_watch([REF[1], REF[0]], 5, REF))
    assert "not in the history" in check_watch([REF[0], (6, "b", "PUT", "9")], 5, REF)[-1]


def test_lost_acknowledged_writes_and_resurrected_failed_ones():
    appends = [NS(key=k, outcome=o, size=s) for k, o, s in
               [("s1", OK, 1), ("s2", UNKNOWN, 1), ("s3", FAILED, 1), ("s4", OK, 40_000)]]

    def state(*keys):
        return {k: value_for(k, 40_000 if k == "s4" else 1) for k in keys}

    assert check_durability(appends, state("s1", "s4")) == []
    assert check_durability(appends, state("s1", "s2", "s4")) == []  # an unknown may or may not have happened
    assert check_durability(appends, state("s4", "s3")) == ["acknowledged write s1 is lost",
                                                            "write s3 was reported failed but is there"]
    assert check_durability(appends, {**state("s1"), "s4": value_for("s4", 30_000)}) == [
        "acknowledged write s4 has another value (30000 bytes, 40000 written)"]


def test_an_acknowledged_write_is_in_the_history_at_its_revision():
    history = [(5, "k0", "PUT", b64(b"11")), (6, "set/1", "PUT", b64(b"s")), (7, "k0", "DELETE", "")]
    assert check_revisions([(5, "k0", b"11"), (6, "set/1", b"s")], history) == []
    assert check_revisions([(6, "k0", b"12"), (5, "k0", b"12"), (9, "k1", b"1")], history) == [
        "acknowledged write k0 at revision 6 is not in the history (revision 6 holds PUT set/1)",
        "acknowledged write k0 at revision 5 is not in the history (revision 5 holds PUT k0)",
        "acknowledged write k1 at revision 9 is not in the history (revision 9 holds nothing)"]


def test_a_lease_gone_sooner_than_its_ttl_after_a_keepalive_is_reported():
    kept = NS(lease=1, ttl=4, granted=0.0, keepalives=[(1.0, 1.1, 4), (2.0, 2.1, None), (3.0, 3.1, 4), (8.0, 8.1, 0)])
    early = NS(lease=2, ttl=4, granted=0.0, keepalives=[(1.0, 1.1, 4), (2.0, 2.2, 0)])
    assert check_leases([kept]) == []
    assert check_leases([early]) == ["lease 2 was gone 1.20s after a keepalive (TTL 4s)"]


def test_availability_counts_slices_with_a_successful_write_and_the_longest_gap():
    writes = [NS(ret=t, outcome=OK) for t in (0.05, 0.15, 0.25, 0.95)] + [NS(ret=0.5, outcome=UNKNOWN)]
    a = availability(writes, 0.0, 1.0)
    assert a["share"] == 0.4 and abs(a["longest_gap"] - 0.7) < 1e-9


def test_a_request_whose_connection_was_refused_certainly_failed_a_timeout_may_have_happened():
    import asyncio

    import aiohttp

    from kvstore.client import EtcdError
    from raftkube.workload import outcome_of

    refused = aiohttp.ClientConnectorError(NS(host="m1", port=1, ssl=None), ConnectionRefusedError(111, "refused"))
    assert outcome_of(refused) == FAILED
    assert outcome_of(EtcdError(503, {"message": "no quorum; the request was not applied"})) == FAILED
    assert outcome_of(EtcdError(503, {"message": "no quorum; the request may still be applied"})) == UNKNOWN
    assert outcome_of(asyncio.TimeoutError()) == UNKNOWN
    assert outcome_of(aiohttp.ServerDisconnectedError()) == UNKNOWN
