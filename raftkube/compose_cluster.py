"""`--compose` for `raftkube status`, `chaos` and `demo`: the cluster docker-compose.yml runs from the current
directory, seen and broken through the docker CLI, by the same master names (m1, m2, ...).

    kill m1       docker compose kill m1 (SIGKILL); it stays down until `restart`
    pause m1      docker compose pause m1 (the cgroup freezer: alive but silent)
    resume m1     docker compose unpause m1
    restart m1    kill it if it runs, then docker compose start m1: same data volume, same address
    partition m1  docker network disconnect: no traffic at all, Raft or clients, either way
    heal m1       docker network connect, with its fixed address (its listeners are bound to it) and its name

`info()` has the shape of a local cluster's cluster.json, so `status` and `chaos leader` read the masters' Raft
state through their KV APIs, published on the host's loopback (raftkube/compose.py, `kv_port`), with the operator's
client certificate, and the kube API through haproxy, with the token and CA of compose/secrets.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

from raftkube import compose, kv_pki

MASTER = re.compile(r"m\d+")


def docker(*args: str, timeout: float = 60.0) -> str:
    """Run `docker ARGS` here; its output, or a SystemExit that says what went wrong and what to do."""
    try:
        out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SystemExit("raftkube: docker is not installed; --compose acts on a cluster started with "
                         "`make compose-up`") from None
    if out.returncode != 0:
        raise SystemExit(f"raftkube: `docker {' '.join(args)}` failed: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout


class ComposeCluster:
    def __init__(self, secrets_dir: str = compose.SECRETS_DIR) -> None:
        self.secrets_dir = os.path.abspath(secrets_dir)

    def containers(self) -> dict[str, dict[str, Any]]:
        """service -> its container as `docker compose ps` describes it (ID, State: running, paused, exited, ...)."""
        lines = docker("compose", "ps", "--all", "--format", "json").splitlines()
        found = {}
        for line in lines:
            if line.strip():
                c = json.loads(line)
                found[c["Service"]] = c
        return found

    def info(self) -> dict[str, Any]:
        containers = self.containers()
        masters = sorted((s for s in containers if MASTER.fullmatch(s)), key=lambda s: int(s[1:]))
        if not masters:
            raise SystemExit("raftkube: no compose cluster in this directory (`docker compose ps` shows no master); "
                             "start one with `make compose-up`")
        api = f"https://127.0.0.1:{compose.API_PORT}"
        return {"masters": [{"name": m, "container": containers[m]["State"],
                             "kv": f"https://127.0.0.1:{compose.kv_port(m)}", "api": None} for m in masters],
                "api": api, "ca": os.path.join(self.secrets_dir, "ca.crt"), "state_dir": self.secrets_dir,
                "kv_tls": kv_pki.cluster_entry(os.path.join(self.secrets_dir, compose.KV_DIR))}

    def where(self, name: str) -> str:
        return f"container {self._container(name)['Name']}"

    def _container(self, name: str) -> dict[str, Any]:
        containers = self.containers()
        if name not in containers or not MASTER.fullmatch(name):
            masters = ", ".join(s for s in containers if MASTER.fullmatch(s))
            raise SystemExit(f"raftkube chaos: no master named {name!r} in this compose cluster (the masters are "
                             f"{masters or 'none: start them with `make compose-up`'})")
        return containers[name]

    def kill(self, name: str) -> None:
        if self._container(name)["State"] == "paused":
            docker("compose", "unpause", name)  # a frozen process cannot take its SIGKILL until thawed
        docker("compose", "kill", "-s", "SIGKILL", name)

    def pause(self, name: str) -> None:
        self._container(name)
        docker("compose", "pause", name)

    def resume(self, name: str) -> None:
        self._container(name)
        docker("compose", "unpause", name)

    def restart(self, name: str) -> None:
        if self._container(name)["State"] in ("running", "paused"):
            self.kill(name)
        docker("compose", "start", name)

    def partition(self, name: str, clients: bool = True) -> None:
        """A network cut is total: clients are cut off too, with or without --clients."""
        network, _ = self._network(name)
        docker("network", "disconnect", network, self._container(name)["ID"])

    def heal(self, name: str) -> None:
        network, ip = self._network(name)
        container = self._container(name)
        if network in container.get("Networks", "").split(","):
            return  # connected already
        docker("network", "connect", "--ip", ip, "--alias", name, network, container["ID"])

    def _network(self, name: str) -> tuple[str, str]:
        """The compose network's name (PROJECT_cluster) and the master's fixed address on it."""
        config = json.loads(docker("compose", "config", "--format", "json"))
        address = config["services"][name]["networks"][compose.NETWORK]["ipv4_address"]
        return config["networks"][compose.NETWORK]["name"], address
