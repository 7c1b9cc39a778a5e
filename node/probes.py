"""Liveness, readiness and startup probes (exec, httpGet, tcpSocket) with Kubernetes' timing fields.

- startupProbe: until it succeeds once, the other probes wait; `failureThreshold` failures kill the container.
- livenessProbe: `failureThreshold` failures in a row kill the container (restartPolicy then decides).
- readinessProbe: `successThreshold` successes make the container ready, `failureThreshold` failures unready;
  a container without one is ready as soon as it has started.
Each probe waits `initialDelaySeconds`, then runs every `periodSeconds`, each try bounded by `timeoutSeconds`.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from node.runtime import ContainerError, ExecProcess

if TYPE_CHECKING:
    from node.container_runner import ContainerRunner

Obj = dict[str, Any]
Run = Callable[[list[str]], Awaitable[ExecProcess]]  # a command started as the container runs them (runtime.exec)


def _num(probe: Obj, field: str, default: float) -> float:
    value = probe.get(field)
    return float(value) if isinstance(value, (int, float)) and value >= 0 else default


def resolve_port(port: Any, container: Obj) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if isinstance(p, dict) and p.get("name") == port:
            return int(p.get("containerPort") or 0)
    raise ValueError(f"the container has no port named {port!r}")


async def http_get(host: str, port: int, path: str, *, https: bool, headers: list[Obj], timeout: float
                   ) -> tuple[bool, str]:
    """Kubernetes' rule: a status from 200 to 399 is a success."""
    context = ssl._create_unverified_context() if https else None  # the kubelet does not verify either
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), timeout)
    try:
        extra = "".join(f"{h.get('name')}: {h.get('value')}\r\n" for h in headers if isinstance(h, dict))
        writer.write(f"GET {path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.32\r\n"
                     f"{extra}Connection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    parts = line.decode("latin-1").split()
    code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return 200 <= code < 400, f"HTTP probe failed with statuscode: {code}"


async def run_probe(probe: Obj, *, host: str, container: Obj, run: Run) -> tuple[bool, str]:
    """One try: (success, what went wrong)."""
    timeout = _num(probe, "timeoutSeconds", 1)
    try:
        if probe.get("exec"):
            command = [str(c) for c in probe["exec"].get("command") or []]
            process = await run(command)
            try:
                out, err = await asyncio.wait_for(process.proc.communicate(), timeout)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.proc.pid, signal.SIGKILL)  # it leads a session of its own
                await process.proc.wait()
                return False, f"command {command} timed out after {timeout:g}s"
            said = (out + err).decode("utf-8", "replace").strip()[-200:]
            return process.proc.returncode == 0, said or f"exit code {process.proc.returncode}"
        if probe.get("httpGet"):
            get = probe["httpGet"]
            return await http_get(get.get("host") or host, resolve_port(get.get("port"), container),
                                  str(get.get("path") or "/"), https=str(get.get("scheme")).upper() == "HTTPS",
                                  headers=get.get("httpHeaders") or [], timeout=timeout)
        if probe.get("tcpSocket"):
            sock = probe["tcpSocket"]
            port = resolve_port(sock.get("port"), container)
            _, writer = await asyncio.wait_for(asyncio.open_connection(sock.get("host") or host, port), timeout)
            writer.close()
            return True, ""
        return True, "no exec, httpGet or tcpSocket handler: raftkube treats this probe as passing"
    except ContainerError as exc:
        return False, exc.message
    except (OSError, asyncio.TimeoutError, ValueError) as exc:
        return False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Prober:
    """The probes of one run of one container; cancelled when the run ends."""

    def __init__(self, runner: "ContainerRunner") -> None:
        self.runner = runner
        self.task: asyncio.Task | None = None

    def begin(self) -> None:
        if any(self.runner.spec.get(p) for p in ("startupProbe", "livenessProbe", "readinessProbe")):
            self.task = asyncio.get_running_loop().create_task(self._run())

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _exec(self, command: list[str]) -> Awaitable[ExecProcess]:
        runner = self.runner
        return runner.worker.ctx.runtime.exec(runner.worker.sandbox, runner.spec, runner.env, command, stdin=False,
                                              tty=False)

    async def _run(self) -> None:
        spec, rec = self.runner.spec, self.runner.record
        if spec.get("startupProbe"):
            if not await self._loop(spec["startupProbe"], "Startup"):
                return
            rec.started = True
            rec.ready = not spec.get("readinessProbe")
            self.runner.changed()
        await asyncio.gather(*(self._loop(spec[p], kind) for p, kind in (("livenessProbe", "Liveness"),
                                                                        ("readinessProbe", "Readiness"))
                               if spec.get(p)))

    async def _loop(self, probe: Obj, kind: str) -> bool:
        runner, rec = self.runner, self.runner.record
        period, threshold = _num(probe, "periodSeconds", 10), int(_num(probe, "failureThreshold", 3)) or 1
        successes_needed = int(_num(probe, "successThreshold", 1)) or 1
        successes = failures = 0
        await asyncio.sleep(_num(probe, "initialDelaySeconds", 0))
        while True:
            ok, message = await run_probe(probe, host=runner.worker.sandbox.ip, container=runner.spec, run=self._exec)
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if not ok:
                runner.worker.event("Warning", "Unhealthy", f"{kind} probe failed: {message}")
                failures_by_kind = runner.worker.ctx.probe_failures
                failures_by_kind[kind] = failures_by_kind.get(kind, 0) + 1
            if kind == "Startup" and ok:
                return True
            if kind == "Readiness" and rec.ready != ok and (successes >= successes_needed or failures >= threshold):
                rec.ready = ok
                runner.changed()
            if kind in ("Startup", "Liveness") and failures >= threshold:
                grace = _num(probe, "terminationGracePeriodSeconds", runner.worker.grace_period())
                runner.kill(f"failed {kind.lower()} probe", grace)
                return False
            await asyncio.sleep(period)
