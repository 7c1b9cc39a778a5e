"""api/client.py against real masters: tokens, CRUD, status, patches, and a watch that outlives its
master and relists after a 410 (the client controllers and kubelets will use)."""
import asyncio

import aiohttp
import pytest

from api.client import ApiClient, Conflict, NotFound
from kvstore.client import KVClient
from tests.integration.cluster import Cluster

TOKEN = "s3cret-admin-token"


@pytest.fixture
async def secured(tmp_path):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f"{TOKEN},admin,1,system:masters\nnode-token,system:node:n1,2,system:nodes\n")  # not up's
    c = Cluster(str(tmp_path / "cluster"), 3, master_flags=("--token-file", str(tokens)))
    client = ApiClient([m["api"] for m in c.info["masters"]], token=TOKEN, ca_file=c.ca, timeout=5)
    try:
        for _ in range(100):  # the default namespaces are made by the masters as they start
            try:
                await client.get("namespaces", "default")
                break
            except NotFound:
                await asyncio.sleep(0.1)
        yield c, client
    finally:
        await client.close()
        await c.close_clients()
        c.stop()


def configmap(name, **labels):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default",
                                                                  "labels": labels}, "data": {"k": "v"}}


async def test_only_requests_with_a_known_token_get_in(secured):
    c, _ = secured
    api = c.master("m1")["api"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=c.tls())) as s:
        async with s.get(api + "/api/v1/namespaces") as r:
            assert r.status == 401 and (await r.json())["reason"] == "Unauthorized"
        async with s.get(api + "/api/v1/namespaces", headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
        async with s.get(api + "/api/v1/nodes", headers={"Authorization": "Bearer node-token"}) as r:
            assert r.status == 200  # what a node may read
        async with s.get(api + "/readyz") as r:
            assert r.status == 200  # health stays open for load balancers


async def test_crud_status_and_patches(secured):
    _, client = secured
    created = await client.create("configmaps", configmap("one", app="a"))
    assert created["metadata"]["uid"]
    items, rv = await client.list("configmaps", "default", label_selector="app=a")
    assert [o["metadata"]["name"] for o in items] == ["one"] and int(rv) >= int(created["metadata"]["resourceVersion"])
    changed = await client.update("configmaps", {**created, "data": {"k": "2"}})
    with pytest.raises(Conflict):
        await client.update("configmaps", {**created, "data": {"k": "stale"}})  # an old resourceVersion
    assert (await client.patch("configmaps", "one", {"data": {"x": "1"}}, "default"))["data"] == {"k": "2", "x": "1"}
    await client.delete("configmaps", "one", "default", uid=changed["metadata"]["uid"])
    with pytest.raises(NotFound):
        await client.get("configmaps", "one", "default")

    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}},
                           "template": {"metadata": {"labels": {"a": "b"}},
                                        "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    d = await client.create("deployments", deployment)
    d = await client.update_status("deployments", {**d, "status": {"replicas": 3}, "spec": {**d["spec"], "replicas": 9}})
    assert d["status"] == {"replicas": 3} and d["spec"]["replicas"] == 1  # /status changes status only
    d = await client.update("deployments", {**d, "status": {"replicas": 0}, "spec": {**d["spec"], "replicas": 2}})
    assert d["status"] == {"replicas": 3} and d["spec"]["replicas"] == 2 and d["metadata"]["generation"] == 2


async def _next(events, timeout=15):
    return await asyncio.wait_for(events.__anext__(), timeout)


async def test_a_watch_outlives_its_master_and_misses_nothing(secured):
    c, client = secured
    events = client.watch("configmaps", "default")
    kind, items = await _next(events)
    assert kind == "RELIST"
    leader_of_watch = "m1"  # the client starts with the first server
    await client.create("configmaps", configmap("before"))
    assert (await _next(events))[0] == "ADDED"
    c.kill(leader_of_watch)
    writer = ApiClient([c.master("m2")["api"], c.master("m3")["api"]], token=TOKEN, ca_file=c.ca)
    try:
        for i in range(5):
            await writer.create("configmaps", configmap(f"after-{i}"))
        seen = [(await _next(events))[1]["metadata"]["name"] for _ in range(5)]
        assert seen == [f"after-{i}" for i in range(5)]  # in order, none lost, none twice
    finally:
        await writer.close()
        await events.aclose()


async def test_a_watch_from_a_compacted_revision_relists(secured):
    c, client = secured
    first = await client.create("configmaps", configmap("old"))
    await client.create("configmaps", configmap("new"))
    await client.create("configmaps", configmap("newer"))  # so the watch's start is below the compaction
    async with KVClient(c.master("m2")["kv"], tls=c.kv_tls()) as kv:
        head = int((await kv.status())["header"]["revision"])
        await kv.compact(head)
    await client.list("configmaps", "default")  # a linearizable read: this master has applied the compaction
    events = client.watch("configmaps", "default", resource_version=first["metadata"]["resourceVersion"])
    kind, items = await _next(events)
    assert kind == "RELIST" and {o["metadata"]["name"] for o in items} >= {"old", "new"}
    await events.aclose()


async def test_a_watch_on_a_follower_keeps_flowing_while_the_leader_dies(secured):
    c, _ = secured
    leader = await c.leader()
    follower = next(n for n in c.names if n != leader)
    watching = ApiClient([c.master(follower)["api"]], token=TOKEN, ca_file=c.ca)  # this one master only
    writer = ApiClient([c.master(n)["api"] for n in c.names if n != leader], token=TOKEN, ca_file=c.ca)
    events = watching.watch("configmaps", "default")
    try:
        assert (await _next(events))[0] == "RELIST"
        c.kill(leader)
        for i in range(5):
            await writer.create("configmaps", configmap(f"during-{i}"))
        seen = [(await _next(events))[1]["metadata"]["name"] for _ in range(5)]
        assert seen == [f"during-{i}" for i in range(5)]
    finally:
        await events.aclose()
        await watching.close()
        await writer.close()


async def test_a_watch_hears_a_bookmark_within_its_interval_while_the_selector_filters_every_event(secured):
    """A quiet watch gets a BOOKMARK every 5 s of silence on the wire, even while events it does not select keep
    coming: the client's dead-server timeout (api/client.py WATCH_SILENCE) counts on it."""
    c, client = secured
    url = f"{c.master('m1')['api']}/api/v1/namespaces/default/configmaps"
    params = {"watch": "true", "resourceVersion": "0", "allowWatchBookmarks": "true", "labelSelector": "app=none"}

    async def churn() -> None:
        for i in range(40):
            await client.create("configmaps", configmap(f"churn-{i}", app="other"))
            await asyncio.sleep(0.2)

    writer = asyncio.create_task(churn())
    started = asyncio.get_running_loop().time()
    try:
        async with client.session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=20),
                                      headers=await client.authorization()) as r:
            line = await asyncio.wait_for(r.content.readline(), 10)
        assert b'"BOOKMARK"' in line
        assert asyncio.get_running_loop().time() - started < 8.0
    finally:
        writer.cancel()
