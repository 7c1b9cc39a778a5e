"""The real etcdctl 3.4 against three masters' gRPC endpoints, unchanged: what an etcd operator types works."""
import http.client
import json
import re
import time
import urllib.request

import pytest

from kvstore import backup
from raftkube import up
from tests.integration.cluster import Cluster
from tests.integration.etcdctl import Watching, etcdctl
from tests.integration.kube import wait_until


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("etcdctl") / "cluster"), 3)
    yield c
    c.stop()


@pytest.fixture
def ctl(cluster):
    """etcdctl with every master as an endpoint, as an operator would run it."""
    return lambda *args, **kw: etcdctl(cluster.grpc(), *args, tls=cluster.kv_flags, **kw)


def revision(ctl) -> int:
    return json.loads(ctl("get", "no-such-key", "-w", "json").stdout)["header"]["revision"]


def test_put_get_and_delete_with_prefixes_ranges_revisions_and_json(ctl):
    assert ctl("put", "fruit/apple", "red").stdout.strip() == "OK"
    first = json.loads(ctl("get", "fruit/apple", "-w", "json").stdout)["kvs"][0]["mod_revision"]  # others write too
    ctl("put", "fruit/apple", "green")
    ctl("put", "fruit/banana", "yellow")
    ctl("put", "fruitcake", "rich")
    assert ctl("get", "fruit/", "--prefix", "--print-value-only").stdout.split() == ["green", "yellow"]
    assert ctl("get", "fruit/apple", "fruit/c").stdout.split() == ["fruit/apple", "green", "fruit/banana", "yellow"]
    assert ctl("get", "fruit/apple", "--rev", str(first), "--print-value-only").stdout.strip() == "red"
    got = json.loads(ctl("get", "fruit/apple", "-w", "json").stdout)
    kv = got["kvs"][0]
    assert kv["version"] == 2 and kv["mod_revision"] > kv["create_revision"] == first
    assert got["count"] == 1 and got["header"]["member_id"]
    assert ctl("del", "fruit/", "--prefix").stdout.strip() == "2"
    assert ctl("get", "fruit", "--prefix", "--keys-only").stdout.split() == ["fruitcake"]


def test_an_interactive_txn_takes_the_branch_its_compare_chooses(ctl):
    ctl("put", "txn/flag", "on")
    script = 'value("txn/flag") = "on"\n\nput txn/result yes\n\nput txn/result no\n\n'
    out = ctl("txn", "-i", input=script).stdout
    assert "\nSUCCESS\n" in out and ctl("get", "txn/result", "--print-value-only").stdout.strip() == "yes"
    script = 'mod("txn/flag") < "1"\n\nput txn/result yes\n\nput txn/result no\n\n'
    assert "\nFAILURE\n" in ctl("txn", "-i", input=script).stdout
    assert ctl("get", "txn/result", "--print-value-only").stdout.strip() == "no"


def test_a_watch_replays_from_a_revision_then_follows_live_writes(cluster, ctl):
    ctl("put", "w/old", "1")
    start = revision(ctl)
    watch = Watching(cluster.grpc(), "w/", "--prefix", "--rev", str(start), tls=cluster.kv_flags)
    try:
        watch.until("PUT", "w/old", "1")
        ctl("put", "w/new", "2")
        ctl("del", "w/old")
        watch.until("PUT", "w/new", "2")
        watch.until("DELETE", "w/old")
    finally:
        watch.stop()


def test_leases_grant_attach_keep_alive_show_list_and_revoke(ctl):
    granted = ctl("lease", "grant", "60").stdout
    lease = re.search(r"lease ([0-9a-f]+) granted with TTL\(60s\)", granted).group(1)
    ctl("put", "leased", "v", "--lease", lease)
    assert "keepalived with TTL(60)" in ctl("lease", "keep-alive", "--once", lease).stdout
    shown = ctl("lease", "timetolive", lease, "--keys").stdout
    assert f"lease {lease} granted with TTL(60s)" in shown and "attached keys([leased])" in shown
    assert lease in ctl("lease", "list").stdout
    assert f"lease {lease} revoked" in ctl("lease", "revoke", lease).stdout
    assert ctl("get", "leased").stdout == ""
    assert "already expired" in ctl("lease", "timetolive", lease).stdout


def test_compaction_makes_older_revisions_unreadable(ctl):
    ctl("put", "comp", "1")
    old = revision(ctl)
    ctl("put", "comp", "2")
    now = revision(ctl)
    assert ctl("compaction", str(now)).stdout.strip() == f"compacted revision {now}"
    failed = ctl("get", "comp", "--rev", str(old), check=False)
    assert failed.returncode != 0 and "required revision has been compacted" in failed.stderr


def test_endpoint_status_shows_which_master_leads_and_every_endpoint_is_healthy(cluster, ctl):
    table = ctl("endpoint", "status", "-w", "table").stdout
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table.splitlines()
            if line.startswith("| https")]
    assert [r[4] for r in rows].count("true") == 1 and len(rows) == 3, table  # IS LEADER
    assert {r[2] for r in rows} == {"3.4.0"}  # VERSION
    health = ctl("endpoint", "health")
    assert health.stderr.count("is healthy") + health.stdout.count("is healthy") == 3


def _members(ctl) -> dict[str, str]:
    """name -> hex ID, from `member list`."""
    return {fields[2]: fields[0] for fields in (line.split(", ") for line in ctl("member", "list").stdout.splitlines())}


def _leader_id(ctl) -> str:
    status = json.loads(ctl("endpoint", "status", "-w", "json").stdout)
    return format(status[0]["Status"]["leader"], "x")


def test_move_leader_hands_leadership_to_the_member_named(ctl):
    members = _members(ctl)
    target = next(i for i in members.values() if i != _leader_id(ctl))
    assert f"to {target}" in ctl("move-leader", target).stdout
    assert _leader_id(ctl) == target


def test_member_add_and_remove(ctl):
    added = ctl("member", "add", "m4", "--peer-urls", f"http://127.0.0.1:{up.free_port()}").stdout
    new_id = re.search(r"Member +([0-9a-f]+) added", added).group(1)  # %16x: a leading 0 prints as a space
    listed = ctl("member", "list").stdout
    assert new_id in listed and "unstarted" in listed and len(listed.splitlines()) == 4
    assert "removed from cluster" in ctl("member", "remove", new_id).stdout
    assert new_id not in ctl("member", "list").stdout


def test_a_saved_snapshot_restores_into_a_fresh_cluster_with_the_same_keys_and_revision(cluster, ctl, tmp_path):
    for i in range(5):
        ctl("put", f"backup/{i}", f"value {i}")
    lease = re.search(r"lease ([0-9a-f]+) granted", ctl("lease", "grant", "300").stdout).group(1)
    ctl("put", "backup/leased", "v", "--lease", lease)
    saved = tmp_path / "snapshot.db"
    etcdctl(cluster.grpc("m1"), "snapshot", "save", str(saved), tls=cluster.kv_flags)
    kept = backup.load(saved.read_bytes())
    before = json.loads(ctl("get", "backup/", "--prefix", "-w", "json").stdout)
    assert kept.revision >= before["header"]["revision"]
    restored = Cluster(str(tmp_path / "restored"), 3, snapshot=str(saved))
    try:
        after = json.loads(etcdctl(restored.grpc(), "get", "backup/", "--prefix", "-w", "json",
                                   tls=restored.kv_flags).stdout)
        assert after["kvs"] == before["kvs"]
        # The revision goes on from the snapshot's: the restored masters' first writes (their keys under
        # /registry/masterleases/, the `kubernetes` Endpoints naming them) come right after it.
        def since_restore() -> list[int]:
            everything = json.loads(etcdctl(restored.grpc(), "get", "", "--prefix", "-w", "json",
                                            tls=restored.kv_flags).stdout)["kvs"]
            return [kv["mod_revision"] for kv in everything if kv["mod_revision"] > kept.revision]
        assert min(wait_until(since_restore, "the restored masters' first writes", 30)) == kept.revision + 1
        assert lease in etcdctl(restored.grpc(), "lease", "list", tls=restored.kv_flags).stdout
    finally:
        restored.stop()


def test_a_watch_goes_on_when_the_leader_is_killed(cluster, ctl):
    leader_id = _leader_id(ctl)
    leader = next(name for name, i in _members(ctl).items() if i == leader_id)
    others = [n for n in cluster.names if n != leader]
    start = str(revision(ctl) + 1)  # from a revision: a put made before the watch is created is not missed
    watch = Watching(cluster.grpc(leader, *others), "failover/", "--prefix", "--rev", start,
                     tls=cluster.kv_flags)  # likely the leader
    try:
        ctl("put", "failover/before", "1")
        watch.until("PUT", "failover/before", "1")
        cluster.kill(leader)
        deadline = time.monotonic() + 30  # a put that meets the election may time out: etcdctl does not retry it
        while etcdctl(cluster.grpc(*others), "put", "failover/after", "2", tls=cluster.kv_flags,
                      check=False).returncode:
            assert time.monotonic() < deadline, "no put got through the survivors"
        watch.until("PUT", "failover/after", "2")
        assert watch.proc.poll() is None
    finally:
        watch.stop()
        cluster.restart(leader)


def test_the_kv_port_serves_grpc_and_json_and_a_grpc_only_port_can_be_added(tmp_path):
    """etcd's client port speaks both; `--grpc-listen` adds a port for gRPC alone, which refuses HTTP/1.1."""
    grpc_only = f"127.0.0.1:{up.free_port()}"
    single = Cluster(str(tmp_path / "single"), 1, ("--grpc-listen", grpc_only))
    try:
        kv = single.master("m1")["kv"]
        assert single.grpc() == kv
        etcdctl(kv, "put", "both", "ways", tls=single.kv_flags)
        got = etcdctl(f"https://{grpc_only}", "get", "both", "--print-value-only", tls=single.kv_flags)
        assert got.stdout.strip() == "ways"
        with urllib.request.urlopen(f"{kv}/health", timeout=10, context=single.kv_tls()) as resp:
            assert json.loads(resp.read()) == {"health": "true"}
        with pytest.raises((OSError, http.client.HTTPException)):  # its first bytes are HTTP/2's SETTINGS
            urllib.request.urlopen(f"https://{grpc_only}/health", timeout=10, context=single.kv_tls())
    finally:
        single.stop()
