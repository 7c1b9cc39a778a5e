"""The real etcdctl 3.4 (Debian's etcd-client), run against a cluster's gRPC endpoints, as an operator would."""
from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
import time

import pytest

ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


def require() -> None:
    """Missing etcdctl fails the test (CI installs it): a skipped check would hide a broken API."""
    if not os.path.exists(ETCDCTL):
        pytest.fail("etcdctl is not installed: apt-get install etcd-client (.ci/run does)")


def env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL")}, "ETCDCTL_API": "3"}


def etcdctl(endpoints: str, *args: str, tls: list[str], input: str | None = None, timeout: float = 30,
            check: bool = True) -> subprocess.CompletedProcess:
    """`tls`: --cacert, --cert and --key (a cluster's kv_flags), or [] for none."""
    require()
    out = subprocess.run([ETCDCTL, "--endpoints", endpoints, *tls, "--command-timeout", "10s", *args], input=input,
                         capture_output=True, text=True, timeout=timeout, env=env())
    if check:
        assert out.returncode == 0, f"etcdctl {' '.join(args)} failed: {out.stderr.strip()}"
    return out


class Watching:
    """`etcdctl watch ...` running in the background; its output lines as they come."""

    def __init__(self, endpoints: str, *args: str, tls: list[str]) -> None:
        require()
        self.proc = subprocess.Popen([ETCDCTL, "--endpoints", endpoints, *tls, "watch", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env())
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, *wanted: str, timeout: float = 20) -> list[str]:
        """Read until `wanted` appears as consecutive lines; every line read so far."""
        deadline = time.monotonic() + timeout
        while not _contains(self.seen, wanted):
            try:
                self.seen.append(self.lines.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"etcdctl watch did not print {wanted} within {timeout}s; it printed "
                                     f"{self.seen[-12:]}, stderr: {self._stderr()}") from None
        return self.seen

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read()[-800:]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _contains(lines: list[str], wanted: tuple[str, ...]) -> bool:
    n = len(wanted)
    return any(tuple(lines[i:i + n]) == wanted for i in range(len(lines) - n + 1))
