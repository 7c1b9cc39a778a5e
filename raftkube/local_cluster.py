"""A `raftkube up` cluster as `raftkube chaos` acts on it: masters by pid (signals) and by failpoint (partitions),
with the same verbs as raftkube/compose_cluster.py has for containers."""
from __future__ import annotations

import os
import signal
from typing import Any

from raftkube import cluster_file, kv_access, up
from raftkube.failpoints import FailpointError, failpoint, split


class LocalCluster:
    """The masters of a `raftkube up` cluster, by pid and failpoint (the same verbs as ComposeCluster)."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir

    def info(self) -> dict[str, Any]:
        return cluster_file.read(self.state_dir)

    def where(self, name: str) -> str:
        return f"pid {cluster_file.find(self.info(), name)['pid']}"

    def _signal(self, name: str, sig: int) -> None:
        m = cluster_file.find(self.info(), name)
        try:
            os.kill(m["pid"], sig)
        except ProcessLookupError:
            raise SystemExit(f"raftkube chaos: master {name} (pid {m['pid']}) is not running; "
                             f"`raftkube chaos restart {name}` starts it") from None

    def kill(self, name: str) -> None:
        self._signal(name, signal.SIGKILL)
        up.wait_gone(cluster_file.find(self.info(), name)["pid"])

    def pause(self, name: str) -> None:
        self._signal(name, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self._signal(name, signal.SIGCONT)

    def restart(self, name: str) -> None:
        up.restart_master(self.info(), name)

    def partition(self, name: str, clients: bool = False) -> None:
        self._cut(name, "cut", clients)

    def heal(self, name: str) -> None:
        self._cut(name, "heal", True)

    def _cut(self, name: str, change: str, clients: bool) -> None:
        """Both ends of every Raft link, so no message crosses either way; the clients failpoint if asked."""
        info = self.info()
        m = cluster_file.find(info, name)
        try:
            tls = kv_access.context(info.get("kv_tls"))
            split([[m], [o for o in info["masters"] if o is not m]], change, tls)
            if clients:
                failpoint(m, {"clients": change == "cut"}, tls)
        except FailpointError as exc:
            raise SystemExit(f"raftkube chaos: {exc}") from None
