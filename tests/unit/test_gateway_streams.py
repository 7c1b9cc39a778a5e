"""How the JSON gateway's lease keepalive stream ends when a keepalive fails: as grpc-gateway ends etcd's, with the
error's status if nothing was sent yet, else with a last `{"error": {...}}` line after the results. The gateway
runs in-process on a loopback port, in front of a service whose quorum goes after a given number of keepalives."""
import json

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from kvstore import errors
from kvstore.errors import KVFailure
from kvstore.etcd_service import Header
from kvstore.gateway import KVGateway


class QuorumLost:
    """The part of EtcdService the keepalive stream calls: `kept` keepalives answer, then none."""

    def __init__(self, kept: int) -> None:
        self.kept = kept

    async def lease_keepalive(self, lease: int) -> dict:
        if self.kept == 0:
            raise KVFailure(errors.unavailable("etcdserver: request timed out: no quorum"))
        self.kept -= 1
        return {"revision": 7, "id": lease, "ttl": 60}

    def header(self, revision: int | None = None) -> Header:
        return Header(1, 2, revision or 7, 3)


async def keepalive(service: QuorumLost, *leases: int) -> tuple[int, list[dict]]:
    body = "".join(json.dumps({"ID": str(lease)}) for lease in leases)
    async with TestServer(KVGateway(service).app()) as server, ClientSession() as session:
        async with session.post(server.make_url("/v3/lease/keepalive"), data=body) as r:
            return r.status, [json.loads(line) for line in (await r.read()).splitlines()]


async def test_a_keepalive_that_fails_first_answers_the_errors_status_and_one_error_line():
    status, lines = await keepalive(QuorumLost(kept=0), 5)
    assert status == 503
    assert lines == [{"error": {"grpc_code": 14, "http_code": 503, "http_status": "Service Unavailable",
                                "message": "etcdserver: request timed out: no quorum"}}]


async def test_a_keepalive_that_fails_mid_stream_ends_the_200_stream_with_an_error_line():
    status, lines = await keepalive(QuorumLost(kept=1), 5, 6, 7)
    assert status == 200
    assert [line.get("result", {}).get("ID") for line in lines] == ["5", None]
    assert lines[1]["error"]["grpc_code"] == 14 and lines[1]["error"]["http_code"] == 503


async def test_every_keepalive_answered_is_one_result_line():
    status, lines = await keepalive(QuorumLost(kept=2), 5, 6)
    assert status == 200 and [line["result"]["TTL"] for line in lines] == ["60", "60"]
