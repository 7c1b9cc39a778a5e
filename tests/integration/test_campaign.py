"""The Jepsen-style campaign on real masters: every fault on the menu, then every check must pass. (That the checkers
bite is tests/integration/test_labs.py's: each lab switches one mechanism off and expects its anomaly.)"""
import pytest

from raftkube import netns
from raftkube.campaign import Plan, campaign
from raftkube.linearizability import OK
from raftkube.nemesis import NET_FAULTS


async def test_a_campaign_under_kills_pauses_and_partitions_finds_no_anomaly(tmp_path):
    """With big values (entries over several Raft messages), snapshots every few seconds, leases kept alive while
    the leader's wall clock is stepped, and every master killed with writes in flight."""
    report = (await campaign(str(tmp_path / "c"), Plan(
        seconds=25, seed=7, faults=("kill-leader", "kill-all", "pause-leader", "partition-leader", "partition-half",
                                    "member-cycle", "clock-step")))).report
    assert report["operations"][OK] > 1000, report["operations"]  # it did real work
    assert report["big_values"] > 0 and report["keepalives"] > 0, report
    assert len(report["timeline"]) >= 6 and report["failovers"] >= 1, report["timeline"]  # faults happened
    assert report["linearizable"], (report["nonlinearizable_keys"], report["undecided_keys"])
    assert report["watch_anomalies"] == [] and report["watch_events"] > 0
    assert report["lost_writes"] == [] and report["lease_anomalies"] == []
    assert report["anomalies"] == 0 and report["findings"] == []


@pytest.mark.skipif(not netns.available(), reason="network namespaces need root on Linux")
async def test_network_level_partitions_in_namespaces_find_no_anomaly(tmp_path):
    """Each master in its own network namespace; the cuts are blackhole routes and a link taken down."""
    report = (await campaign(str(tmp_path / "c"), Plan(seconds=14, seed=3, netns=True, faults=tuple(NET_FAULTS)))).report
    assert report["operations"][OK] > 500 and report["failovers"] >= 1, report["timeline"]
    assert any("net-" in text for _, text in report["timeline"])
    assert report["anomalies"] == 0, (report["nonlinearizable_keys"], report["watch_anomalies"],
                                      report["lost_writes"])
