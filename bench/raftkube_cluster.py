"""A throw-away raftkube cluster for the benchmark: `raftkube.up` masters in a temp state dir."""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
from typing import Any

from raftkube import cluster_file, up


class RaftkubeCluster:
    label = "raftkube"

    def __init__(self, masters: int = 3) -> None:
        self.masters = masters
        self.keep_logs = False
        self.state_dir = ""
        self.info: dict[str, Any] = {"masters": []}

    @property
    def names(self) -> list[str]:
        return [m["name"] for m in self.info["masters"]]

    def start(self) -> None:
        self.state_dir = tempfile.mkdtemp(prefix="bench-raftkube-")
        self.info = up.start(self.state_dir, self.masters, 0)

    def _master(self, name: str) -> dict[str, Any]:
        return next(m for m in self.info["masters"] if m["name"] == name)

    def endpoint(self, name: str) -> str:
        return self._master(name)["kv"]

    def grpc_endpoint(self, name: str) -> str:
        return self._master(name)["grpc"]

    @property
    def kv_tls(self) -> dict[str, str] | None:
        return self.info.get("kv_tls")

    def kill(self, name: str) -> None:
        pid = self._master(name)["pid"]
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

    def restart(self, name: str) -> None:
        m = self._master(name)
        m["pid"] = up.spawn(m["argv"], os.path.join(self.state_dir, "logs", f"{name}.log"))
        cluster_file.write(self.state_dir, self.info)  # so that `up.stop` finds the new pid

    def stop(self) -> None:
        if not self.state_dir:
            return
        if os.path.exists(cluster_file.path(self.state_dir)):
            up.stop(self.state_dir)
        if self.keep_logs:
            shutil.rmtree(os.path.join(self.state_dir, "data"), ignore_errors=True)
            print(f"  raftkube logs kept in {self.logs()}", flush=True)
        else:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state_dir = ""

    def logs(self) -> str:
        return os.path.join(self.state_dir, "logs")
