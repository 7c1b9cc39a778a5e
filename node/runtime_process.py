"""The process runtime: each container is a local process, started from the container's command and args.

No image is pulled or unpacked: the image name is only reported back (imageID repeats it), and the command runs
from the host's PATH (README, "Nodes"). A container's process
- runs in its own session, so SIGTERM and SIGKILL reach it and every process it started (os.killpg);
- starts in $RAFTKUBE_ROOT, where its volumeMounts are symlinks (node/volumes.py), with only its environment
  (node/env.py) plus PATH, LANG and PYTHONUNBUFFERED=1, never the kubelet's own (which holds its token);
- writes stdout and stderr to its log file, opened O_APPEND; the file is rotated once past `max_log_bytes`
  (copied to current.log.1 and truncated), so a chatty container keeps at most twice that on disk;
- is recorded in process.json (pid and kernel start time): a restarted kubelet adopts it, never starting a
  duplicate, and a reused pid is not mistaken for it. An adopted process is not our child: when it ends its
  exit code is unknown, and it is reported as 137.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
from typing import Any

from node import env as envs
from node import volumes
from node.pod_config import PodConfig
from node.runtime import ContainerError, Handle
from node.sandbox import Sandbox

Obj = dict[str, Any]
UNKNOWN_EXIT = 137
POLL = 0.5


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def rotate(path: str, max_bytes: int) -> None:
    """copytruncate: the writer keeps its O_APPEND descriptor and continues at the start of the file."""
    try:
        if os.path.getsize(path) <= max_bytes:
            return
        shutil.copyfile(path, path + ".1")
        os.truncate(path, 0)
    except OSError:
        pass


class ProcessHandle:
    def __init__(self, pid: int, ticks: int | None, log_path: str, max_log_bytes: int,
                 proc: asyncio.subprocess.Process | None = None) -> None:
        self.pid = pid
        self.ticks = ticks
        self.proc = proc
        self.log_path = log_path
        self.max_log_bytes = max_log_bytes
        self.container_id = f"process://{pid}"

    async def wait(self) -> int:
        while True:
            if self.proc is not None:
                try:
                    return exit_code(await asyncio.wait_for(asyncio.shield(self.proc.wait()), POLL))
                except asyncio.TimeoutError:
                    pass
            else:
                if start_ticks(self.pid) != self.ticks:
                    return UNKNOWN_EXIT
                await asyncio.sleep(POLL)
            rotate(self.log_path, self.max_log_bytes)

    def signal(self, sig: int) -> None:
        if self.proc is None and start_ticks(self.pid) != self.ticks:
            return  # gone, and its pid may be someone else's now
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def base_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": os.environ.get("LANG", "C.UTF-8"), "PYTHONUNBUFFERED": "1"}


class ProcessRuntime:
    kind = "process"
    probes = True

    def __init__(self, *, max_log_bytes: int = 1 << 20) -> None:
        self.max_log_bytes = max_log_bytes

    async def prepare(self, sandbox: Sandbox, pod: Obj, config: PodConfig) -> None:
        try:
            volumes.materialize(sandbox, pod, config)
        except OSError as exc:
            raise ContainerError("FailedMount", f"could not write the volumes of pod {sandbox.namespace}/"
                                                f"{sandbox.name}: {exc}") from None

    async def start(self, sandbox: Sandbox, pod: Obj, container: Obj, env: dict[str, str]) -> Handle:
        name = container["name"]
        where = f"container {name} of pod {sandbox.namespace}/{sandbox.name}"
        argv = envs.command_line(container, env)
        try:
            cwd = volumes.mount(sandbox, container)
            log_fd = os.open(sandbox.log_path(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        except OSError as exc:
            raise ContainerError("CreateContainerError", f"{where}: {exc}") from None
        try:
            proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, env={**base_env(), **env},
                                                        stdin=asyncio.subprocess.DEVNULL, stdout=log_fd,
                                                        stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise ContainerError("RunContainerError", f'{where}: failed to start {argv[0]!r}: {exc.strerror} '
                                                      "(raftkube runs the command on the node's PATH; no image "
                                                      "is pulled)") from None
        finally:
            os.close(log_fd)
        ticks = start_ticks(proc.pid)
        with open(os.path.join(sandbox.container_dir(name), "process.json"), "w") as f:
            json.dump({"pid": proc.pid, "ticks": ticks, "argv": argv}, f)
        return ProcessHandle(proc.pid, ticks, sandbox.log_path(name), self.max_log_bytes, proc)

    def adopt(self, sandbox: Sandbox, pod: Obj, name: str, container_id: str) -> Handle | None:
        try:
            with open(os.path.join(sandbox.dir, "containers", name, "process.json")) as f:
                info = json.load(f)
            pid, ticks = int(info["pid"]), info["ticks"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if container_id != f"process://{pid}" or ticks is None or start_ticks(pid) != ticks:
            return None
        return ProcessHandle(pid, ticks, sandbox.log_path(name), self.max_log_bytes)
