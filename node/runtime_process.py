"""The process runtime: each container is a local process, started from the container's command and args.

No image is pulled or unpacked: the image name is only reported back (imageID repeats it), and the command runs
from the node's own files (README, "Nodes"). A container's process
- is started by its log shim (node/log_shim.py), which leads a session of its own: SIGTERM and SIGKILL reach the
  shim, the container and every process it started (os.killpg); the shim writes the output as timestamped lines
  to the log file and rotates it once past `max_log_bytes`, so a chatty container keeps at most twice that;
- is placed by node/enter.py as node/isolation.py decided: on a node running as root, in a mount namespace and root
  of its own, as the pod's unprivileged uid; else as the node's user, in $RAFTKUBE_ROOT where its volumeMounts are
  symlinks. Either way with only its environment (node/env.py) plus PATH, LANG and PYTHONUNBUFFERED=1, never the
  kubelet's own (which holds its credentials). A command that cannot start is a RunContainerError, with enter.py's
  reason (node/launch.py);
- reads, with `stdin: true`, a named pipe in its container directory (which `kubectl attach -i` writes to), else
  /dev/null;
- is recorded in process.json (the shim's pid and kernel start time): a restarted kubelet adopts it, never
  starting a duplicate, and a reused pid is not mistaken for it. An adopted process is not our child: its exit
  code comes from the exit file the shim writes (137 if there is none: the shim itself was killed).
`kubectl exec` runs its command the same way (environment, working directory, namespace and uid), in a session of
its own.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import sys
from typing import Any

from node import env as envs
from node import launch, log_shim, volumes
from node.host_paths import HostPaths
from node.isolation import Direct, Placement, spec_path, write_spec
from node.pod_config import PodConfig
from node.runtime import ContainerError, ExecProcess, Handle
from node.sandbox import Sandbox
from node.stats import ProcTable, Usage

Obj = dict[str, Any]
UNKNOWN_EXIT = 137
POLL = 0.5
EXIT_FILE = "exit.json"


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


def recorded_exit(container_dir: str) -> int:
    """The exit code the log shim wrote, for a container that was not our child."""
    try:
        with open(os.path.join(container_dir, EXIT_FILE)) as f:
            return int(json.load(f)["exitCode"])
    except (OSError, ValueError, KeyError, TypeError):
        return UNKNOWN_EXIT


class ProcessHandle:
    def __init__(self, pid: int, ticks: int | None, container_dir: str,
                 proc: asyncio.subprocess.Process | None = None) -> None:
        self.pid = pid  # the log shim's, which leads the container's session
        self.ticks = ticks
        self.proc = proc
        self.container_dir = container_dir
        self.container_id = f"process://{pid}"

    async def wait(self) -> int:
        if self.proc is not None:
            return exit_code(await self.proc.wait())
        while start_ticks(self.pid) == self.ticks:
            await asyncio.sleep(POLL)
        return recorded_exit(self.container_dir)

    def usage(self, table: ProcTable) -> Usage | None:
        return table.session(self.pid, without=(self.pid,))

    def signal(self, sig: int) -> None:
        if self.proc is None and start_ticks(self.pid) != self.ticks:
            return  # gone, and its pid may be someone else's now
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class ProcessRuntime:
    kind = "process"
    probes = True
    streaming = True
    files = True

    def __init__(self, *, max_log_bytes: int = 1 << 20, placement: Placement | None = None,
                 host_paths: HostPaths | None = None) -> None:
        self.max_log_bytes = max_log_bytes
        self.placement = placement or Direct()
        self.host_paths = host_paths or HostPaths([])

    def container_root(self, sandbox: Sandbox, name: str) -> str:
        return self.placement.container_root(sandbox, name)

    def base_env(self) -> dict[str, str]:
        return {"PATH": self.placement.path(), "LANG": os.environ.get("LANG", "C.UTF-8"), "PYTHONUNBUFFERED": "1"}

    async def prepare(self, sandbox: Sandbox, pod: Obj, config: PodConfig) -> None:
        try:
            volumes.materialize(sandbox, pod, config, self.host_paths.resolve)
            self.placement.share(sandbox, pod)
        except OSError as exc:
            raise ContainerError("FailedMount", f"could not write the volumes of pod {sandbox.namespace}/"
                                                f"{sandbox.name}: {exc}") from None

    async def start(self, sandbox: Sandbox, pod: Obj, container: Obj, env: dict[str, str]) -> Handle:
        name = container["name"]
        where = f"container {name} of pod {sandbox.namespace}/{sandbox.name}"
        argv = envs.command_line(container, env)
        directory = sandbox.container_dir(name)
        try:
            spec = write_spec(sandbox, name, self.placement.spec(
                sandbox, pod, container, volumes.mounts(sandbox, pod, container, self.host_paths.resolve)))
            stdin = self._stdin(sandbox, name) if container.get("stdin") else os.open(os.devnull, os.O_RDONLY)
            shim_log = os.open(os.path.join(directory, "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        except OSError as exc:
            raise ContainerError("CreateContainerError", f"{where}: {exc}") from None
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(directory, EXIT_FILE))
        with launch.Report() as report:
            shim = [sys.executable, "-E", "-s", "-S", log_shim.__file__, "--log", sandbox.log_path(name),
                    "--max-bytes", str(self.max_log_bytes), "--exit-file", os.path.join(directory, EXIT_FILE),
                    "--pass-fd", str(report.fd), "--", *launch.command(spec, report.fd, argv)]
            try:
                proc = await asyncio.create_subprocess_exec(*shim, cwd="/", env={**self.base_env(), **env},
                                                            stdin=stdin, stdout=asyncio.subprocess.DEVNULL,
                                                            stderr=shim_log, start_new_session=True,
                                                            pass_fds=(report.fd,))
            except OSError as exc:
                raise ContainerError("RunContainerError", f"{where}: failed to start its log shim: {exc}") from None
            finally:
                os.close(stdin)
                os.close(shim_log)
            failure = await report.outcome()
        if failure:
            await proc.wait()
            raise ContainerError("RunContainerError", f"{where}: failed to start {argv[0]!r}: {failure}")
        ticks = start_ticks(proc.pid)
        with open(os.path.join(directory, "process.json"), "w") as f:
            json.dump({"pid": proc.pid, "ticks": ticks, "argv": argv}, f)
        return ProcessHandle(proc.pid, ticks, directory, proc)

    def stdin_path(self, sandbox: Sandbox, name: str) -> str:
        return os.path.join(sandbox.container_dir(name), "stdin")

    def _stdin(self, sandbox: Sandbox, name: str) -> int:
        """The container's end of its stdin pipe, opened read-write: the container never sees end-of-file while
        no one attaches, and a writer (`kubectl attach -i`) can open it at any time, across kubelet restarts."""
        path = self.stdin_path(sandbox, name)
        if not os.path.exists(path):
            os.mkfifo(path, 0o600)
        return os.open(path, os.O_RDWR)

    async def exec(self, sandbox: Sandbox, container: Obj, env: dict[str, str], argv: list[str], *, stdin: bool,
                   tty: bool) -> ExecProcess:
        name = container["name"]
        recorded = self._recorded(sandbox, name)
        if recorded is None or start_ticks(recorded[0]) != recorded[1]:
            raise ContainerError("ExecFailed", f"container {name} is not running")
        join = self.placement.namespace(recorded[0])
        full_env = {**self.base_env(), **({"TERM": "xterm"} if tty else {}), **env}
        try:
            with launch.Report() as report:
                command = launch.command(spec_path(sandbox, name), report.fd, argv, join=join)
                passed = (report.fd,) if join is None else (report.fd, join)
                process = await self._spawn(command, full_env, passed, stdin=stdin, tty=tty)
                failure = await report.outcome()
        finally:
            if join is not None:
                os.close(join)
        if failure:
            if process.terminal is not None:
                os.close(process.terminal)
            await process.proc.wait()
            raise ContainerError("ExecFailed", f"failed to exec in container: {failure}")
        return process

    @staticmethod
    async def _spawn(command: list[str], env: dict[str, str], passed: tuple[int, ...], *, stdin: bool, tty: bool
                     ) -> ExecProcess:
        """The exec's process, in a session of its own: on pipes, or on a pseudo-terminal it controls."""
        try:
            if not tty:
                pipe = asyncio.subprocess.PIPE
                return ExecProcess(await asyncio.create_subprocess_exec(
                    *command, cwd="/", env=env, stdin=pipe if stdin else asyncio.subprocess.DEVNULL, stdout=pipe,
                    stderr=pipe, start_new_session=True, pass_fds=passed))
            terminal, child = pty.openpty()
            name = os.ttyname(child)

            def controlling_terminal() -> None:  # in the child: a new session, whose terminal is the pty
                os.setsid()
                os.close(os.open(name, os.O_RDWR))

            try:
                proc = await asyncio.create_subprocess_exec(*command, cwd="/", env=env, stdin=child, stdout=child,
                                                            stderr=child, preexec_fn=controlling_terminal,
                                                            pass_fds=passed)
            except BaseException:
                os.close(terminal)
                raise
            finally:
                os.close(child)
            return ExecProcess(proc, terminal)
        except OSError as exc:
            raise ContainerError("ExecFailed", f"failed to exec in container: {exc.strerror}") from None

    @staticmethod
    def _recorded(sandbox: Sandbox, name: str) -> tuple[int, int | None] | None:
        """The pid and start time of the container's log shim (process.json), None if it has none."""
        try:
            with open(os.path.join(sandbox.dir, "containers", name, "process.json")) as f:
                info = json.load(f)
            return int(info["pid"]), info["ticks"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def adopt(self, sandbox: Sandbox, pod: Obj, name: str, container_id: str) -> Handle | None:
        recorded = self._recorded(sandbox, name)
        if recorded is None:
            return None
        pid, ticks = recorded
        if container_id != f"process://{pid}" or ticks is None or start_ticks(pid) != ticks:
            return None
        return ProcessHandle(pid, ticks, os.path.join(sandbox.dir, "containers", name))
