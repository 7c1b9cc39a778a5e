"""Jepsen in miniature: concurrent reads, writes and compare-and-swaps through every master while the
leader is killed and restarted; the whole history must be linearizable (raftkube/linearizability.py)."""
import asyncio
import random
import time

from kvstore.client import EtcdError, b64
from raftkube.linearizability import FAILED, OK, UNKNOWN, Op, check
from tests.integration.cluster import TRANSIENT

KEYS = ["k0", "k1", "k2"]


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, EtcdError) and "was not applied" in str(exc.body.get("message", "")):
        return FAILED
    return UNKNOWN  # a timeout, a dropped connection, "may still be applied": it may have happened


async def _client(cluster, cid: int, history: list, until: float) -> None:
    rng = random.Random(cid)
    names = cluster.names
    i = 0
    while time.monotonic() < until:
        i += 1
        kv = cluster.kv(names[(cid + i) % len(names)], timeout=3)
        key = rng.choice(KEYS)
        dice = rng.random()
        call = time.monotonic()
        try:
            if dice < 0.4:
                got = await kv.get(key.encode())
                history.append(Op(key, "read", call, time.monotonic(), OK, int(got) if got else None, client=cid))
            elif dice < 0.8:
                value = cid * 1_000_000 + i
                op = Op(key, "write", call, 0, OK, value, client=cid)
                await kv.put(key.encode(), str(value).encode())
                op.ret = time.monotonic()
                history.append(op)
            else:
                expected = rng.choice([None, *[h.value for h in history[-5:] if h.key == key]])
                value = cid * 1_000_000 + i
                compare = ({"key": b64(key.encode()), "target": "VERSION", "version": "0"} if expected is None else
                           {"key": b64(key.encode()), "target": "VALUE", "value": b64(str(expected).encode())})
                op = Op(key, "cas", call, 0, OK, value, expected, client=cid)
                res = await kv.txn([compare], [{"request_put": {"key": b64(key.encode()),
                                                                "value": b64(str(value).encode())}}])
                op.ret, op.succeeded = time.monotonic(), bool(res.get("succeeded"))
                history.append(op)
        except TRANSIENT as exc:
            if dice >= 0.4:  # a read that failed tells nothing
                op.ret, op.outcome = time.monotonic(), _outcome(exc)
                history.append(op)
            await asyncio.sleep(0.02)


async def test_the_history_is_linearizable_across_a_leader_kill(cluster):
    """Raft §8: linearizable reads and writes, whatever happens to the leader."""
    history: list[Op] = []
    until = time.monotonic() + 5.0
    clients = [asyncio.create_task(_client(cluster, cid, history, until)) for cid in range(6)]
    await asyncio.sleep(1.5)  # the fault schedule of this campaign, not a synchronisation
    leader = await cluster.leader()
    cluster.kill(leader)
    await asyncio.sleep(1.5)
    cluster.restart(leader)
    await asyncio.gather(*clients)
    result = check(history, budget=60)
    outcomes = {o: sum(1 for h in history if h.outcome == o) for o in (OK, FAILED, UNKNOWN)}
    assert outcomes[OK] > 100, outcomes  # the campaign did real work
    assert result["ok"], (f"not linearizable on keys {result['bad_keys']}, undecided on "
                          f"{result['undecided_keys']} ({outcomes})")
