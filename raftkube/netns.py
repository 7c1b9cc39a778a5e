"""Masters in network namespaces, for faults at the network level (Linux, root only: CI runs as root).

Each master gets a namespace with one veth interface on a bridge in the host's namespace, and an address of its
own on a private /24 (so it binds that address, as asked on its command line). The host reaches every master
through the bridge. Faults are routing changes, no firewall needed:
  cut(a, b)     blackhole routes in a's and b's namespaces to each other: no packet crosses either way
  isolate(a)    a's veth goes down: cut from every master and every client
and heal() undoes them. raftkube/nemesis.py uses these for its net-* faults when cluster.json says "netns".
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from typing import Any

RAFT_PORT, KV_PORT, API_PORT = 7001, 2379, 6443


def available() -> bool:
    """Root with iproute2 and permission to make namespaces (containers may forbid it)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"rkprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return made


def _ip(*args: str) -> None:
    out = subprocess.run(["ip", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")


class Network:
    """A bridge and one namespace per master; `tag` keeps side-by-side runs apart (names and subnet)."""

    def __init__(self, names: list[str], tag: str | None = None) -> None:
        self.tag = tag or f"{random.randrange(16 ** 4):04x}"
        self.subnet = f"10.{200 + int(self.tag[:2], 16) % 50}.{int(self.tag[2:], 16) % 250 + 1}"
        self.bridge = f"rkb{self.tag}"
        self.masters = {name: {"ns": f"rk{self.tag}{name}", "veth": f"rkv{self.tag}{i}",
                               "ip": f"{self.subnet}.{10 + i}"} for i, name in enumerate(names)}
        self.cuts: set[tuple[str, str]] = set()

    def create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for m in self.masters.values():
            _ip("netns", "add", m["ns"])
            _ip("link", "add", m["veth"], "type", "veth", "peer", "name", "eth0", "netns", m["ns"])
            _ip("link", "set", m["veth"], "master", self.bridge, "up")
            _ip("-n", m["ns"], "addr", "add", f"{m['ip']}/24", "dev", "eth0")
            _ip("-n", m["ns"], "link", "set", "eth0", "up")
            _ip("-n", m["ns"], "link", "set", "lo", "up")

    def destroy(self) -> None:
        for m in self.masters.values():
            subprocess.run(["ip", "netns", "del", m["ns"]], capture_output=True)
            subprocess.run(["ip", "link", "del", m["veth"]], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)

    def write_layout(self, state_dir: str) -> None:
        """layout.json for up.start: each master on its own address, the same ports."""
        os.makedirs(state_dir, exist_ok=True)
        layout = {"masters": [{"name": n, "raft": f"{m['ip']}:{RAFT_PORT}", "kv": f"{m['ip']}:{KV_PORT}",
                               "api": f"{m['ip']}:{API_PORT}"}
                              for n, m in self.masters.items()],
                  "api": f"127.0.0.1:{API_PORT}"}
        with open(os.path.join(state_dir, "layout.json"), "w") as f:
            json.dump(layout, f, indent=2)

    def namespaces(self) -> dict[str, str]:
        return {n: m["ns"] for n, m in self.masters.items()}

    def describe(self) -> dict[str, Any]:
        return {"tag": self.tag, "masters": self.masters}

    # -- faults --------------------------------------------------------------------------------------------------

    def cut(self, a: str, b: str) -> None:
        for x, y in ((a, b), (b, a)):
            if (x, y) not in self.cuts:
                _ip("-n", self.masters[x]["ns"], "route", "add", "blackhole", f"{self.masters[y]['ip']}/32")
                self.cuts.add((x, y))

    def isolate(self, a: str) -> None:
        _ip("link", "set", self.masters[a]["veth"], "down")

    def heal(self) -> None:
        for x, y in sorted(self.cuts):
            subprocess.run(["ip", "-n", self.masters[x]["ns"], "route", "del", "blackhole",
                            f"{self.masters[y]['ip']}/32"], capture_output=True)
        self.cuts.clear()
        for m in self.masters.values():
            subprocess.run(["ip", "link", "set", m["veth"], "up"], capture_output=True)

    @classmethod
    def of(cls, info: dict[str, Any]) -> "Network":
        """The network a cluster.json describes."""
        desc = info["netns"]
        net = cls(list(desc["masters"]), desc["tag"])
        net.masters = desc["masters"]
        return net
