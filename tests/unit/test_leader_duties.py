"""Automatic compaction targets, by revision count and by time window."""
from kvstore.leader_duties import LeaderDuties, Retention


def test_retention_parses_counts_and_windows():
    assert Retention.parse("10000") == Retention(revisions=10000)
    assert Retention.parse("5m") == Retention(seconds=300)
    assert Retention.parse("0") == Retention()


def test_revision_retention_keeps_the_last_n():
    duties = LeaderDuties(store=None, retention=Retention(revisions=100))
    assert duties.compaction_target(1000, now=0) == 900
    assert duties.compaction_target(50, now=0) <= 0


def test_time_retention_compacts_to_what_was_current_a_window_ago():
    duties = LeaderDuties(store=None, retention=Retention(seconds=60))
    assert duties.compaction_target(10, now=0) == 0
    assert duties.compaction_target(500, now=30) == 0
    assert duties.compaction_target(900, now=61) == 10  # revision 10 was the head 60 s ago
    assert duties.compaction_target(950, now=95) == 500
