"""/metrics on real masters: the KV port answers anyone (as etcd's client port), the kube API port wants the
token; the Raft, store and API families are there, and their counters move with the work done."""
import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.cluster import Cluster, eventually

RAFT = ["raftkube_raft_role", "raftkube_raft_is_leader", "raftkube_raft_term", "raftkube_raft_commit_index",
        "raftkube_raft_applied_index", "raftkube_raft_leader_changes", "raftkube_raft_proposal_duration_seconds",
        "raftkube_raft_proposals_failed", "raftkube_raft_snapshot_duration_seconds",
        "raftkube_raft_snapshot_size_bytes"]
STORE = ["raftkube_store_keys", "raftkube_store_revision", "raftkube_store_compact_revision",
         "raftkube_store_watchers", "raftkube_store_slow_watchers_cancelled"]
API = ["raftkube_apiserver_request", "raftkube_apiserver_request_duration_seconds",
       "raftkube_apiserver_current_inflight_requests", "raftkube_apiserver_open_watches"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("metrics") / "cluster"), 3)
    yield c
    c.stop()


def parse(text: str) -> dict[str, dict[tuple, float]]:
    """family name -> {(sample name, sorted labels): value}"""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        samples = out.setdefault(family.name, {})
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def scrape(url: str, *, token: str | None = None, ssl=None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/metrics", headers=headers, ssl=ssl) as r:
            text = await r.text()
            return r.status, parse(text) if r.status == 200 else {}


def value(metrics: dict, sample: str, **labels: str) -> float:
    family = metrics.get(sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum"), {})
    return family.get((sample, tuple(sorted(labels.items()))), 0.0)


async def test_kv_port_serves_raft_and_store_metrics_without_a_token(cluster):
    """etcd serves /metrics on its client port without a token, behind client-cert-auth when that is on; so does
    every master's KV port."""
    leaders = 0
    for name in cluster.names:
        status, m = await scrape(cluster.master(name)["kv"], ssl=cluster.kv_tls())
        assert status == 200
        for family in RAFT + STORE + ["process_cpu_seconds"]:
            assert family in m, family
        leaders += value(m, "raftkube_raft_is_leader")
        assert value(m, "raftkube_raft_term") >= 1
        assert value(m, "raftkube_store_revision") >= 1
        assert sum(value(m, "raftkube_raft_role", role=r) for r in ("leader", "follower", "candidate")) == 1
    assert leaders == 1


async def test_api_port_wants_the_token_and_counts_requests(cluster):
    """kube-apiserver protects /metrics: no token, 401 (and the 401 itself is counted)."""
    api = cluster.master("m2")["api"]
    status, _ = await scrape(api, ssl=cluster.tls())
    assert status == 401
    status, before = await scrape(api, token=cluster.token, ssl=cluster.tls())
    assert status == 200
    for family in API + RAFT + STORE:
        assert family in before, family
    assert value(before, "raftkube_apiserver_request_total", verb="GET", resource="", code="401") >= 1
    async with aiohttp.ClientSession(base_url=api, headers={"Authorization": f"Bearer {cluster.token}"}) as s:
        for i in range(3):
            async with s.post("/api/v1/namespaces/default/configmaps", ssl=cluster.tls(),
                              json={"metadata": {"name": f"metrics-{i}"}, "data": {"a": "b"}}) as r:
                assert r.status == 201
        async with s.get("/api/v1/namespaces/default/configmaps", ssl=cluster.tls()) as r:
            assert r.status == 200
        async with s.get("/api/v1/namespaces/default/configmaps/metrics-0/nope", ssl=cluster.tls()) as r:
            assert r.status == 404
    _, after = await scrape(api, token=cluster.token, ssl=cluster.tls())

    def moved(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    assert moved("raftkube_apiserver_request_total", verb="POST", resource="configmaps", code="201") == 3
    assert moved("raftkube_apiserver_request_total", verb="LIST", resource="configmaps", code="200") == 1
    assert moved("raftkube_apiserver_request_duration_seconds_count", verb="POST", resource="configmaps") == 3
    assert moved("raftkube_raft_proposal_duration_seconds_count") >= 1  # batches: up to one per create
    assert moved("raftkube_store_keys") >= 3
    assert moved("raftkube_store_revision") >= 3
    assert value(after, "raftkube_apiserver_current_inflight_requests") == 1  # this scrape


async def test_open_watches_show(cluster):
    api = cluster.master("m3")["api"]
    headers = {"Authorization": f"Bearer {cluster.token}"}
    async with aiohttp.ClientSession(base_url=api, headers=headers) as s:
        async with s.get("/api/v1/namespaces/kube-system/configmaps", params={"watch": "true"},
                         ssl=cluster.tls()) as stream:
            assert stream.status == 200
            _, m = await scrape(api, token=cluster.token, ssl=cluster.tls())
            assert value(m, "raftkube_apiserver_open_watches") >= 1
            assert value(m, "raftkube_store_watchers") >= 1


async def test_leader_changes_count_a_failover(cluster):
    """Killing the leader: the survivors each see one more leader take office."""
    leader = await cluster.leader()
    survivors = [n for n in cluster.names if n != leader]
    before = {n: value((await scrape(cluster.master(n)["kv"], ssl=cluster.kv_tls()))[1],
                     "raftkube_raft_leader_changes_total")
              for n in survivors}
    assert all(v >= 1 for v in before.values())
    cluster.kill(leader)
    await cluster.leader(among=survivors)

    async def counted() -> bool:
        for n in survivors:
            m = (await scrape(cluster.master(n)["kv"], ssl=cluster.kv_tls()))[1]
            if value(m, "raftkube_raft_leader_changes_total") <= before[n]:
                return False
        return True

    await eventually(counted, timeout=20, what="a leader change counted on every survivor")
    cluster.restart(leader)


async def test_control_plane_metrics_and_json_logs(tmp_path):
    """`--metrics-listen` on the control-plane child: its leases and controllers; `--log-format json` reaches it."""
    import json
    import socket

    from tests.integration.cluster import FAST_CONTROL_PLANE

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = ("--log-format", "json", FAST_CONTROL_PLANE[0], f"{FAST_CONTROL_PLANE[1]} --metrics-listen 127.0.0.1:{port}")
    c = Cluster(str(tmp_path / "cluster"), 1, master_flags=flags)
    try:
        async def leading() -> dict:
            status, m = await scrape(f"http://127.0.0.1:{port}")
            leases = {dict(k[1])["lease"]: v for k, v in m.get("raftkube_leader_election_is_leader", {}).items()}
            return status == 200 and leases.get("kube-system/kube-scheduler") == 1 and m

        m = await eventually(leading, timeout=30, what="the control plane holding its leases")
        assert "raftkube_workqueue_depth" in m and "raftkube_controller_reconcile_duration_seconds" in m
        with open(tmp_path / "cluster" / "logs" / "m1.log") as f:
            lines = [json.loads(line) for line in f if line.startswith("{")]
        assert any(line["logger"] == "raftkube.leader" and "now leads" in line["msg"] for line in lines)
        assert all(line["name"] == "m1" for line in lines)
    finally:
        c.stop()
