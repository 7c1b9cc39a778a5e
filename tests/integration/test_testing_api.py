"""raftkube.testing, used as a user would: a cluster per test, broken on purpose, checked, and gone afterwards
(also when the user's test fails: run through pytest in a subprocess, with the plugin's fixtures)."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

from raftkube.testing import AsyncCluster, Cluster, ClusterError, check_linearizable


def processes_of(state_dir: str) -> list[int]:
    """Pids whose command line names the state dir (masters, control planes, node agents)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if state_dir.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def test_a_cluster_is_started_broken_healed_and_gone(tmp_path):
    state_dir = str(tmp_path / "c")
    with Cluster(masters=3, control_plane=False, state_dir=state_dir) as cluster:
        assert cluster.masters == ["m1", "m2", "m3"] and len(cluster.kv_endpoints) == 3
        cluster.kv.put(b"k", b"1")
        leader = cluster.leader()
        cluster.kill(leader)
        new = cluster.wait_for_leader(other_than=leader)
        assert cluster.kv.get(b"k") == b"1"
        cluster.restart(leader)
        follower = next(n for n in cluster.masters if n not in (new, leader))
        cluster.pause(follower)
        cluster.kv_of(new).put(b"k", b"2")  # two of three: a majority
        cluster.resume(follower)
        cluster.partition(new)
        assert cluster.wait_for_leader(other_than=new) in (leader, follower)
        cluster.heal(new)
        watch = cluster.kv.watch(b"k", start_revision=1)
        assert next(watch).get("created")
        assert [e["kv"]["value"] for e in next(watch)["events"]][:1] == ["MQ=="]  # b"1", the first put
        watch.close()
        assert os.path.exists(cluster.kubeconfig) and cluster.api_endpoints
    assert processes_of(state_dir) == []


def test_partitions_need_failpoints(tmp_path):
    with Cluster(masters=1, control_plane=False, failpoints=False, state_dir=str(tmp_path / "c")) as cluster:
        with pytest.raises(ClusterError, match="failpoints=True"):
            cluster.partition("m1")


def test_a_stale_read_makes_the_check_fail_with_the_history_that_shows_it(tmp_path):
    """Masters whose linearizable reads skip their barrier (the stale-reads lab, `--lab stale-reads`): the old
    leader, cut off from the others, answers from its own state, so a write through the new leader, then a read of
    the old one, is the anomaly the check must catch."""
    with Cluster(masters=3, control_plane=False, state_dir=str(tmp_path / "c"),
                 master_flags=("--lab", "stale-reads")) as cluster:
        history = cluster.history()
        old = cluster.leader()
        with history.op("write", "k", "before", client=1):
            cluster.kv_of(old).put(b"k", b"before")
        cluster.partition(old)  # Raft links only: its clients still reach it
        new = cluster.wait_for_leader(other_than=old)
        with history.op("write", "k", "after", client=1):
            cluster.kv_of(new).put(b"k", b"after")
        with history.op("read", "k", client=2) as op:
            op.saw(cluster.kv_of(old).get(b"k").decode())
        result = check_linearizable(history)
        assert not result.ok and "NOT linearizable" in str(result) and "r(k)='before'" in str(result)


async def test_the_async_cluster(tmp_path):
    async with AsyncCluster(masters=3, control_plane=False, state_dir=str(tmp_path / "c")) as cluster:
        await cluster.kv.put(b"k", b"v")
        leader = await cluster.leader()
        await cluster.kill(leader)
        await cluster.wait_for_leader(other_than=leader)
        assert await cluster.kv.get(b"k") == b"v"
        async with cluster.kube_client() as api:
            assert (await api.get("namespaces", "default"))["metadata"]["name"] == "default"
    await asyncio.sleep(0)
    assert processes_of(str(tmp_path / "c")) == []


USER_TESTS = '''
import pytest

@pytest.mark.raftkube(masters=1, nodes=1, control_plane=False)
def test_fails_while_its_cluster_runs(raftkube_cluster):
    raftkube_cluster.kv.put(b"k", b"v")
    print("STATE_DIR=" + raftkube_cluster.state_dir)
    assert False, "a user's test failing"

def test_two_clusters(raftkube_cluster_factory):
    a = raftkube_cluster_factory(masters=1, control_plane=False)
    b = raftkube_cluster_factory(masters=3, control_plane=False)
    assert len(a.masters) == 1 and len(b.masters) == 3
    print("STATE_DIR=" + a.state_dir)
    print("STATE_DIR=" + b.state_dir)
'''


def test_the_pytest_plugin_leaves_no_process_behind_even_when_a_test_fails(tmp_path):
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "test_user.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "1 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    state_dirs = [line.split("=", 1)[1] for line in run.stdout.splitlines() if line.startswith("STATE_DIR=")]
    assert len(state_dirs) == 3
    for state_dir in state_dirs:
        assert processes_of(state_dir) == [], state_dir
    assert os.path.exists(f"{state_dirs[0]}/logs/fake.log"), "the failing test's node ran (and is gone too)"
    assert "state and logs are kept" in run.stderr + run.stdout, "the failed test's logs are pointed at"
