"""The Jepsen-style campaign on real masters: every fault on the menu, then every check must pass; and the
checkers are proven to bite: a follower serving stale reads (a failpoint) is caught."""
from raftkube.campaign import campaign
from raftkube.linearizability import OK


async def test_a_campaign_under_kills_pauses_and_partitions_finds_no_anomaly(tmp_path):
    report = await campaign(str(tmp_path / "c"), seconds=25, seed=7)
    assert report["operations"][OK] > 1000, report["operations"]  # it did real work
    assert len(report["timeline"]) >= 6 and report["failovers"] >= 1, report["timeline"]  # faults happened
    assert report["linearizable"], (report["nonlinearizable_keys"], report["undecided_keys"])
    assert report["watch_anomalies"] == [] and report["watch_events"] > 0
    assert report["lost_writes"] == []
    assert report["anomalies"] == 0


async def test_stale_reads_from_a_cut_off_follower_are_caught(tmp_path):
    report = await campaign(str(tmp_path / "c"), seconds=6, stale_reads=True)
    assert not report["linearizable"] and report["nonlinearizable_keys"], report
    assert report["anomalies"] > 0
