"""The fake runtime (as kwok): containers without processes, for scale tests and controller tests.

A container becomes running `start_delay` seconds after its start; with restartPolicy Never or OnFailure it
exits after `run_time` seconds with exit code 0, or with the code the pod's annotation
`raftkube.io/fake-exit-code` gives (so Jobs can be made to fail). With restartPolicy Always it runs until
it is stopped. SIGTERM ends it with exit code 0 at once, as a well-behaved program would. Each container
writes one log line, so `kubectl logs` has something to show, and reports a small fixed usage (1m of CPU, 4 MiB)
to `kubectl top`. Nothing runs, so there is nothing to exec into, attach to or forward a port to.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from typing import Any

from node import log_format
from node.pod_config import PodConfig
from node.runtime import Handle
from node.sandbox import Sandbox
from node.stats import ProcTable, Usage

Obj = dict[str, Any]
EXIT_CODE_ANNOTATION = "raftkube.io/fake-exit-code"
CPU_CORES = 0.001  # what a fake container uses: 1m of CPU ...
MEMORY_BYTES = 4 << 20  # ... and 4 MiB


class FakeHandle:
    def __init__(self, container_id: str, run_time: float | None, exit_code: int) -> None:
        self.container_id = container_id
        self._run_time = run_time
        self._exit_code = exit_code
        self._stopped = asyncio.get_running_loop().create_future()
        self._started = time.time()

    async def wait(self) -> int:
        if self._run_time is None:
            return await self._stopped
        try:
            return await asyncio.wait_for(asyncio.shield(self._stopped), self._run_time)
        except asyncio.TimeoutError:
            return self._exit_code

    def signal(self, sig: int) -> None:
        if not self._stopped.done():
            self._stopped.set_result(0 if sig == signal.SIGTERM else 128 + sig)

    def usage(self, table: ProcTable) -> Usage:
        return Usage((table.at - self._started) * CPU_CORES, MEMORY_BYTES)  # exactly CPU_CORES over any window


def fake_exit_code(pod: Obj) -> int:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(EXIT_CODE_ANNOTATION, "0")
    try:
        return int(value)
    except ValueError:
        return 1  # a garbled annotation still asks for a failure


class FakeRuntime:
    kind = "fake"
    probes = False
    streaming = False
    files = False

    def __init__(self, *, start_delay: float = 0.5, run_time: float = 2.0) -> None:
        self.start_delay = start_delay
        self.run_time = run_time

    async def prepare(self, sandbox: Sandbox, pod: Obj, config: PodConfig) -> None:
        return None  # no processes, no files to give them

    def container_root(self, sandbox: Sandbox, name: str) -> str:
        return sandbox.root_dir(name)

    def _handle(self, pod: Obj, container_id: str) -> FakeHandle:
        ends = (pod.get("spec") or {}).get("restartPolicy", "Always") != "Always"
        return FakeHandle(container_id, self.run_time if ends else None, fake_exit_code(pod))

    async def start(self, sandbox: Sandbox, pod: Obj, container: Obj, env: dict[str, str]) -> Handle:
        await asyncio.sleep(self.start_delay)
        name = container["name"]
        sandbox.container_dir(name)
        line = (f"fake container {name} of pod {sandbox.namespace}/{sandbox.name} started (raftkube fake runtime; "
                "no process runs)")
        with open(sandbox.log_path(name), "ab") as log:
            log.write(log_format.encode("stdout", line.encode(), time.time_ns()))
        return self._handle(pod, f"fake://{secrets.token_hex(16)}")

    def adopt(self, sandbox: Sandbox, pod: Obj, name: str, container_id: str) -> Handle | None:
        """A restarted kubelet keeps its fake containers running (their time to run starts again)."""
        if container_id.startswith("fake://") and os.path.isdir(sandbox.dir):
            return self._handle(pod, container_id)
        return None
