"""What a container runtime does for the pod workers; `runtime_process` and `runtime_fake` implement it.

The workers own everything Kubernetes specifies (init containers in order, restartPolicy, CrashLoopBackOff,
probes, grace periods, status); a runtime only prepares a pod's files and starts, finds again and signals
one container. That keeps the two runtimes small and makes a fake pod behave like a real one.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from node.pod_config import PodConfig
from node.sandbox import Sandbox
from node.stats import ProcTable, Usage

Obj = dict[str, Any]


class ContainerError(Exception):
    """A container that cannot start as specified (Kubernetes' waiting reasons: CreateContainerConfigError,
    RunContainerError, ...): the worker shows `reason` and `message` and tries again later."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class ExecProcess:
    """A command run in a container's environment (`kubectl exec`): its process, and with a TTY the terminal's
    controlling side (stdin, stdout and stderr all go through it)."""
    proc: asyncio.subprocess.Process
    terminal: int | None = None


class Handle(Protocol):
    container_id: str

    async def wait(self) -> int:
        """The exit code, when the container ends."""

    def signal(self, sig: int) -> None:
        """SIGTERM or SIGKILL to the container (all of its processes)."""

    def usage(self, table: ProcTable) -> Usage | None:
        """The container's cumulative CPU time and its memory now (node/stats.py), None if not measurable."""


class Runtime(Protocol):
    kind: str  # "process" | "fake"
    probes: bool  # whether liveness, readiness and startup probes run
    streaming: bool  # whether exec, attach and port-forward reach its containers
    files: bool  # whether a pod's volumes become files (the kubelet then asks for their service account tokens)

    async def prepare(self, sandbox: Sandbox, pod: Obj, config: PodConfig) -> None:
        """The pod's volumes as files; raises ContainerError("FailedMount", ...) when one cannot be made."""

    def container_root(self, sandbox: Sandbox, name: str) -> str:
        """Where the container sees its volumeMounts: `/`, or a directory of the node without mounts
        ($RAFTKUBE_ROOT)."""

    async def start(self, sandbox: Sandbox, pod: Obj, container: Obj, env: dict[str, str]) -> Handle:
        """Start one container, its output going to sandbox.log_path(name); raises ContainerError."""

    def adopt(self, sandbox: Sandbox, pod: Obj, name: str, container_id: str) -> Handle | None:
        """The container `container_id` if it still runs (found after a kubelet restart), else None."""

    def stdin_path(self, sandbox: Sandbox, name: str) -> str:
        """The pipe a container with `stdin: true` reads (`kubectl attach -i` writes to it)."""

    async def exec(self, sandbox: Sandbox, container: Obj, env: dict[str, str], argv: list[str], *, stdin: bool,
                   tty: bool) -> ExecProcess:
        """Start `argv` as the container would run it (its environment, working directory, namespace and user);
        only when `streaming`. Raises ContainerError when it cannot start."""
