"""What a user's fault-injection tests look like: `pip install raftkube`, then the `raftkube_cluster` fixture.

1. My own HTTP client for the etcd v3 gateway (a few lines of urllib) writes, reads and compare-and-swaps while
   the leader is killed and a follower paused; the history it recorded must be linearizable.
2. My own controller (a few lines on the official `kubernetes` client: it mirrors ConfigMaps labelled
   mirror=yes) must converge after the master whose controller-manager leads dies.
"""
from __future__ import annotations

import base64
import json
import random
import ssl
import threading
import time
import urllib.error
import urllib.request

import pytest

from raftkube.testing import Cluster, check_linearizable


# -- 1. my client, a history, and a verdict ---------------------------------------------------------------------

class MyClient:
    """The simplest etcd v3 JSON client: one endpoint per call, the next one when a master refuses. `tls`: the KV
    CA and the operator's client certificate (the cluster's `kv_ssl_context()`), without which the masters' KV
    ports refuse the connection."""

    def __init__(self, endpoints: list[str], tls: ssl.SSLContext) -> None:
        self.endpoints = endpoints
        self.tls = tls

    def _post(self, path: str, body: dict) -> dict:
        for i, endpoint in enumerate(random.sample(self.endpoints, len(self.endpoints))):
            request = urllib.request.Request(endpoint + path, json.dumps(body).encode(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=2, context=self.tls) as answer:
                    return json.load(answer)
            except urllib.error.URLError as exc:
                if not isinstance(exc.reason, ConnectionRefusedError) or i == len(self.endpoints) - 1:
                    raise

    @staticmethod
    def _b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    def put(self, key: str, value: int) -> None:
        self._post("/v3/kv/put", {"key": self._b64(key), "value": self._b64(str(value))})

    def get(self, key: str) -> int | None:
        kvs = self._post("/v3/kv/range", {"key": self._b64(key)}).get("kvs") or []
        return int(base64.b64decode(kvs[0]["value"])) if kvs else None

    def cas(self, key: str, expected: int, value: int) -> bool:
        answer = self._post("/v3/kv/txn", {
            "compare": [{"key": self._b64(key), "target": "VALUE", "result": "EQUAL", "value": self._b64(str(expected))}],
            "success": [{"request_put": {"key": self._b64(key), "value": self._b64(str(value))}}]})
        return bool(answer.get("succeeded"))


def workload(cluster: Cluster, history, stop: threading.Event, seed: int) -> None:
    client, rng = MyClient(cluster.kv_endpoints, cluster.kv_ssl_context()), random.Random(seed)
    while not stop.is_set():
        key, value = f"register-{rng.randrange(3)}", rng.randrange(1_000_000)
        try:
            dice = rng.random()
            if dice < 0.4:
                with history.op("write", key, value):
                    client.put(key, value)
            elif dice < 0.8:
                with history.op("read", key) as op:
                    op.saw(client.get(key))
            else:
                expected = rng.randrange(1_000_000)
                with history.op("cas", key, value, expected=expected) as op:
                    op.saw(client.cas(key, expected, value))
        except OSError:  # a timeout, a dropped connection, a 503 without quorum: recorded as unknown
            time.sleep(0.01)


def after(history, count: int, timeout: float = 60) -> None:
    """Until `count` more operations have ended (whatever their outcome)."""
    target, deadline = len(history.ops) + count, time.monotonic() + timeout
    while len(history.ops) < target:
        assert time.monotonic() < deadline, f"the clients did only {len(history.ops)} operations"
        time.sleep(0.01)


@pytest.mark.raftkube(masters=3, control_plane=False)
def test_my_client_stays_linearizable_through_a_leader_kill_and_a_pause(raftkube_cluster):
    cluster, history, stop = raftkube_cluster, raftkube_cluster.history(), threading.Event()
    clients = [threading.Thread(target=workload, args=(cluster, history, stop, seed)) for seed in range(4)]
    for t in clients:
        t.start()
    try:
        after(history, 50)  # operations before each fault, and after the last
        leader = cluster.leader()
        cluster.kill(leader)
        after(history, 50)
        follower = next(name for name in cluster.masters if name != leader)
        cluster.pause(follower)  # a majority gone: writes fail or time out (recorded as unknown)
        after(history, 10)
        cluster.resume(follower)
        cluster.restart(leader)
        cluster.wait_for_leader()
        after(history, 50)
    finally:
        stop.set()
        for t in clients:
            t.join()
    assert sum(op.outcome == "ok" for op in history.ops) > 20, "the clients got work done"
    result = check_linearizable(history)
    assert result.ok, result


# -- 2. my controller converges after the controller-manager's master dies -----------------------------------

def mirror_controller(kubeconfig: str, stop: threading.Event) -> None:
    """For each ConfigMap labelled mirror=yes in default, a ConfigMap NAME-mirror with the same data."""
    from kubernetes import client, config, watch

    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    while not stop.is_set():
        try:
            for event in watch.Watch().stream(api.list_namespaced_config_map, "default", label_selector="mirror=yes",
                                              timeout_seconds=5):
                source = event["object"]
                body = {"metadata": {"name": f"{source.metadata.name}-mirror"}, "data": source.data}
                try:
                    api.create_namespaced_config_map("default", body)
                except client.ApiException as exc:
                    if exc.status != 409:
                        raise
                    api.replace_namespaced_config_map(f"{source.metadata.name}-mirror", "default", body)
        except Exception:  # noqa: BLE001 - a master died under the watch: list and watch again
            time.sleep(0.2)


def until_ok(call, timeout: float = 30):
    """What my code does around a write when masters die: try again on 404 (not made yet), 409 (an earlier
    attempt did it), 5xx (no leader for a moment) and a connection cut under the request (its master died while
    answering), until a deadline."""
    from kubernetes import client
    from urllib3.exceptions import HTTPError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except client.ApiException as exc:
            if exc.status == 409:
                return None
            if exc.status not in (404, 429, 500, 503, 504) or time.monotonic() > deadline:
                raise
        except HTTPError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def test_my_controller_converges_after_the_controller_managers_master_dies(raftkube_cluster):
    from kubernetes import client, config

    cluster, stop = raftkube_cluster, threading.Event()
    api = client.CoreV1Api(config.new_client_from_config(config_file=cluster.kubeconfig))
    controller = threading.Thread(target=mirror_controller, args=(cluster.kubeconfig, stop))
    controller.start()
    try:
        leases = client.CoordinationV1Api(api.api_client)
        lease = until_ok(lambda: leases.read_namespaced_lease("kube-controller-manager", "kube-system"))
        cluster.kill(lease.spec.holder_identity.rpartition("_")[0])  # holders are "<master>_<uid>"
        for i in range(5):  # the dead master may have led Raft too: a write can meet the election (503)
            until_ok(lambda: api.create_namespaced_config_map(
                "default", {"metadata": {"name": f"cm-{i}", "labels": {"mirror": "yes"}}, "data": {"n": str(i)}}))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            mirrors = {c.metadata.name: c.data for c in api.list_namespaced_config_map("default").items
                       if c.metadata.name.endswith("-mirror")}
            if mirrors == {f"cm-{i}-mirror": {"n": str(i)} for i in range(5)}:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the mirrors did not converge: {mirrors}")
    finally:
        stop.set()
        controller.join()
