"""A flood of requests on one master: clients are told to wait (429 with Retry-After), never a 5xx, and the
cluster keeps its leader. Limits set low here so that a test's flood reaches them."""
import asyncio

import aiohttp
import pytest

from tests.integration.cluster import Cluster

LIMITS = ("--max-requests-inflight", "4", "--max-mutating-requests-inflight", "2", "--max-watches-per-user", "3")
CM = "/api/v1/namespaces/default/configmaps"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("load") / "cluster"), 3, LIMITS)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
async def api(cluster):
    async with aiohttp.ClientSession(base_url=cluster.master("m2")["api"],
                                     headers={"Authorization": f"Bearer {cluster.token}"},
                                     connector=aiohttp.TCPConnector(ssl=cluster.tls(), limit=0)) as session:
        yield session


async def test_a_flood_gets_429s_with_retry_after_and_no_5xx_and_the_leader_stays(cluster, api):
    status = await cluster.kv("m1").status()
    leader, term = status["leader"], status["raftTerm"]

    async def one(i: int) -> tuple[int, str | None]:
        if i % 3:
            request = api.get(CM)
        else:
            request = api.post(CM, json={"metadata": {"name": f"flood-{i}"}, "data": {"i": str(i)}})
        async with request as r:
            await r.read()
            return r.status, r.headers.get("Retry-After")

    answers = await asyncio.gather(*(one(i) for i in range(300)))
    statuses = {s for s, _ in answers}
    assert statuses <= {200, 201, 429}, statuses
    assert 429 in statuses and all(after == "1" for s, after in answers if s == 429)
    status = await cluster.kv("m1").status()
    assert (status["leader"], status["raftTerm"]) == (leader, term)


async def test_one_user_may_keep_only_so_many_watches_open(api):
    watches = [await api.get(CM + "?watch=1") for _ in range(3)]
    try:
        assert all(w.status == 200 for w in watches)
        async with api.get(CM + "?watch=true") as extra:
            assert extra.status == 429
            assert "watches open" in (await extra.json())["message"]
    finally:
        for w in watches:
            w.close()
