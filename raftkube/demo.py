"""`raftkube demo failover|quorum`: the two classic scenarios, run on a live cluster, as a timeline.

    failover  kill -9 the leader while a client writes; see the election and the writes resume
    quorum    kill a majority; see writes fail fast with "no quorum" while local reads still answer,
              then bring one master back and see writes resume

Every line carries the seconds since the demo began. Killed masters are started again at the end. With --compose
the masters are the containers of `make compose-up`, killed and started through docker.
"""
from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp

from kvstore.client import EtcdError, KVClient
from raftkube import kv_access, status
from raftkube.compose_cluster import ComposeCluster
from raftkube.local_cluster import LocalCluster

# aiohttp.ClientError too: Docker's port publisher accepts a connection, then drops it while the master starts.
TRANSIENT = (EtcdError, OSError, asyncio.TimeoutError, aiohttp.ClientError)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", choices=["failover", "quorum"])
    p.add_argument("--state-dir", default=".raftkube")
    p.add_argument("--compose", action="store_true", help="the compose cluster of this directory (make compose-up)")


class Demo:
    def __init__(self, info: dict[str, Any], cluster: LocalCluster | ComposeCluster) -> None:
        self.info = info
        self.cluster = cluster
        self.started = time.monotonic()
        tls = kv_access.context(info.get("kv_tls"))
        self.clients = {m["name"]: KVClient(m["kv"], timeout=3, tls=tls) for m in info["masters"]}

    def say(self, text: str) -> None:
        print(f"t={time.monotonic() - self.started:6.2f}s  {text}", flush=True)

    async def roles(self, names: list[str] | None = None) -> dict[str, tuple[str, int]]:
        """name -> (role, term) for each master that answers."""
        out = {}
        for name in names or list(self.clients):
            try:
                st = await self.clients[name].status()
            except TRANSIENT:
                continue
            out[name] = (status.role(st), int(st.get("raftTerm", 0)))
        return out

    async def leader(self, among: list[str], timeout: float = 15.0) -> tuple[str, int] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = [(n, t) for n, (role, t) in (await self.roles(among)).items() if role == "leader"]
            if len(leaders) == 1:
                return leaders[0]
            await asyncio.sleep(0.05)
        return None

    async def write(self, names: list[str], value: bytes) -> tuple[bool, str]:
        for name in names:
            try:
                await self.clients[name].put(b"demo/counter", value)
                return True, name
            except EtcdError as exc:
                return False, exc.body.get("message", str(exc))
            except (OSError, asyncio.TimeoutError, aiohttp.ClientError):
                continue
        return False, "no master answered"

    async def close(self) -> None:
        for c in self.clients.values():
            await c.close()

    # -- scenarios --------------------------------------------------------------------------

    async def first_leader(self) -> tuple[str, int]:
        found = await self.leader(list(self.clients))
        if found is None:
            raise SystemExit("raftkube demo: no leader to start from; is the cluster up and healthy?")
        return found

    async def failover(self) -> None:
        names = list(self.clients)
        old, term = await self.first_leader()
        self.say(f"{old} leads (term {term}); a client writes demo/counter every 50 ms through the others")
        survivors = [n for n in names if n != old]
        for i in range(5):
            await self.write(survivors, b"%d" % i)
            await asyncio.sleep(0.05)
        self.cluster.kill(old)
        killed_at = time.monotonic()
        self.say(f"kill -9 {old}")
        new = None
        i = 5
        while time.monotonic() - killed_at < 20:
            ok, where = await self.write(survivors, b"%d" % i)
            i += 1
            if new is None:
                new = await self.leader(survivors, timeout=0.05)
                if new:
                    self.say(f"{new[0]} elected leader (term {new[1]}), {time.monotonic() - killed_at:.2f}s after the kill")
            if ok:
                self.say(f"writes succeed again (through {where}), {time.monotonic() - killed_at:.2f}s after the kill")
                break
            await asyncio.sleep(0.05)
        self.cluster.restart(old)
        self.say(f"restarted {old}; it rejoins as a follower and catches up")
        await self.wait_caught_up(old)

    async def quorum(self) -> None:
        names = list(self.clients)
        leader, term = await self.first_leader()
        victims = [n for n in names if n != leader][: (len(names) + 1) // 2]  # a majority of the masters
        ok, _ = await self.write([leader], b"before")
        self.say(f"{leader} leads (term {term}); a write before: {'ok' if ok else 'failed'}")
        for name in victims:
            self.cluster.kill(name)
            self.say(f"kill -9 {name}")
        self.say(f"{len(names) - len(victims)} of {len(names)} masters left: no majority")
        started = time.monotonic()
        ok, message = await self.write([leader], b"during")
        self.say(f"a write {'succeeded?!' if ok else 'failed'} after {time.monotonic() - started:.2f}s: {message}")
        try:
            got = await self.clients[leader].get(b"demo/counter", serializable=True)
            self.say(f"a serializable (local) read still answers: demo/counter = {got!r}")
        except TRANSIENT as exc:
            self.say(f"a serializable read failed: {exc}")
        back = victims[0]
        self.cluster.restart(back)
        self.say(f"restarted {back}: a majority again")
        restarted = time.monotonic()
        while time.monotonic() - restarted < 30:
            ok, where = await self.write([leader, back], b"after")
            if ok:
                self.say(f"writes succeed again (through {where}), {time.monotonic() - restarted:.2f}s after the restart")
                break
            await asyncio.sleep(0.1)
        for name in victims[1:]:
            self.cluster.restart(name)
            self.say(f"restarted {name}")

    async def wait_caught_up(self, name: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status = await self.clients[name].status()
                if status.get("leader", "0") != "0":
                    self.say(f"{name} is back, following the leader, at revision {status['header']['revision']}")
                    return
            except TRANSIENT:
                pass
            await asyncio.sleep(0.1)
        self.say(f"{name} did not come back within {timeout:.0f}s; see its log")


def run(args: argparse.Namespace) -> int:
    cluster = status.target(args)
    info = cluster.info()

    async def main() -> None:
        demo = Demo(info, cluster)
        try:
            await getattr(demo, args.scenario)()
        finally:
            await demo.close()

    asyncio.run(main())
    return 0
