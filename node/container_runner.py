"""One container's life inside a pod worker: start, wait, restart (restartPolicy, CrashLoopBackOff), probes, stop.

    record.state   waiting --start--> running --exit--> terminated --restart?--> waiting (CrashLoopBackOff) ...
                      ^ ContainerError (config missing, command not found): waits, then tries again

The record is saved in the sandbox after every change, so a restarted kubelet continues where it was: a record
that says running is adopted from the runtime (never started twice), and its restart count and last state stay.
"""
from __future__ import annotations

import asyncio
import calendar
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from node import env as envs
from node import pod_config
from node.backoff import CrashLoopBackOff
from node.pod_status import ContainerRecord, will_restart
from node.probes import Prober
from node.runtime import ContainerError, Handle

if TYPE_CHECKING:
    from node.pod_worker import PodWorker

Obj = dict[str, Any]
log = logging.getLogger("raftkube.kubelet")
UNKNOWN_EXIT = 137  # the process ended while no kubelet watched it: its exit code is lost
CONFIG_RETRY = 2.0  # seconds before a container that could not start is tried again


class ContainerRunner:
    def __init__(self, worker: "PodWorker", spec: Obj, record: ContainerRecord, *, init: bool) -> None:
        self.worker = worker
        self.spec = spec
        self.record = record
        self.init = init
        policy = (worker.pod.get("spec") or {}).get("restartPolicy") or "Always"
        self.policy = ("Never" if policy == "Never" else "OnFailure") if init else policy
        self.backoff = CrashLoopBackOff(base=worker.ctx.backoff_base)
        self.handle: Handle | None = None
        self.stopping = False
        self.kill_message = ""
        self._wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.env: dict[str, str] = {}

    @property
    def name(self) -> str:
        return self.record.name

    def describe(self) -> str:
        return f"container {self.name} of pod {self.worker.key}"

    def changed(self) -> None:
        self.worker.sandbox.save_record(self.record)
        self.worker.changed.set()

    def begin(self) -> asyncio.Task:
        self.task = asyncio.get_running_loop().create_task(self.run(), name=self.describe())
        return self.task

    async def run(self) -> bool:
        """Until the container is done for good (or stopped); True when it succeeded."""
        rec = self.record
        while not self.stopping:
            if rec.state == "running":
                handle = self.worker.ctx.runtime.adopt(self.worker.sandbox, self.worker.pod, self.name,
                                                       rec.container_id) if rec.container_id else None
                if handle is None:
                    rec.terminated(UNKNOWN_EXIT, "Error", "the container ended while its kubelet was not running")
                    self.changed()
                    continue
                log.info("%s: found running again (%s)", self.describe(), rec.container_id)
                self.env = await self._env_or_empty()
                await self._watch(handle)
                continue
            if rec.state == "terminated":
                if not will_restart(self.policy, rec.exit_code or 0):
                    return rec.succeeded
                if not await self._back_off():
                    break
            handle = await self._start()
            if handle is not None:
                await self._watch(handle)
        return rec.succeeded

    async def _back_off(self) -> bool:
        rec = self.record
        delay = self.backoff.next_delay(_ran_for(rec))
        rec.restart_count += 1
        log_path = self.worker.sandbox.log_path(self.name)
        if os.path.exists(log_path):  # `kubectl logs --previous` reads the run that just ended
            os.replace(log_path, self.worker.sandbox.log_path(self.name, previous=True))
            if os.path.exists(log_path + ".1"):
                os.remove(log_path + ".1")
        if delay:
            message = f"back-off {delay:g}s restarting failed container={self.name} pod={self.worker.pod_name}"
            rec.waiting("CrashLoopBackOff", message)
            self.worker.event("Warning", "BackOff", f"Back-off restarting failed container {self.name} in pod "
                                                    f"{self.worker.pod_name}")
        else:
            rec.waiting("ContainerCreating")
        self.changed()
        return await self.pause(delay)

    async def pause(self, seconds: float) -> bool:
        """Sleep, cut short by stop(); False when stopping."""
        if seconds > 0 and not self.stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), seconds)
            except asyncio.TimeoutError:
                pass
        return not self.stopping

    async def _env_or_empty(self) -> dict[str, str]:
        try:
            return await self._environment()
        except ContainerError:
            return {}

    async def _environment(self) -> dict[str, str]:
        w = self.worker
        config = await pod_config.fetch(w.ctx.client, w.pod)
        env = envs.container_env(w.pod, self.spec, config, pod_ip=w.sandbox.ip, host_ip=w.ctx.host_ip,
                                 node_allocatable=w.ctx.allocatable)
        env["RAFTKUBE_ROOT"] = w.ctx.runtime.container_root(w.sandbox, self.name)
        return env

    async def _start(self) -> Handle | None:
        rec, w = self.record, self.worker
        try:
            self.env = await self._environment()
            handle = await w.ctx.runtime.start(w.sandbox, w.pod, self.spec, self.env)
        except ContainerError as exc:
            if (rec.reason, rec.message) != (exc.reason, exc.message):
                w.event("Warning", "Failed", f"Error: {exc.message}")
            rec.waiting(exc.reason, exc.message)
            self.changed()
            await self.pause(CONFIG_RETRY)
            return None
        except Exception as exc:  # noqa: BLE001 - the API unreachable, a disk error: wait and try again
            log.warning("%s: could not start: %s", self.describe(), exc)
            await self.pause(CONFIG_RETRY)
            return None
        self.handle = handle
        rec.running(handle.container_id)
        probes = (self.spec if w.ctx.runtime.probes else {})
        rec.started = not probes.get("startupProbe")
        rec.ready = not self.init and rec.started and not probes.get("readinessProbe")
        self.changed()
        w.event("Normal", "Started", f"Started container {self.name}")
        return handle

    async def _watch(self, handle: Handle) -> None:
        """Wait for the container to end (probing it meanwhile), then record how it ended."""
        self.handle, self.kill_message = handle, ""
        if self.stopping:
            handle.signal(signal.SIGTERM)
        prober = Prober(self) if self.worker.ctx.runtime.probes and not self.init else None
        if prober:
            prober.begin()
        try:
            code = await handle.wait()
        finally:
            if prober:
                prober.cancel()
        self.handle = None
        self.record.terminated(code, "Error" if self.kill_message and code else None, self.kill_message)
        self.changed()

    def kill(self, message: str, grace: float) -> None:
        """A failed liveness or startup probe: stop this run (SIGTERM, SIGKILL after `grace`); restartPolicy decides."""
        handle = self.handle
        if handle is None:
            return
        self.kill_message = message
        self.worker.event("Normal", "Killing", f"Container {self.name} {message}, will be restarted")
        handle.signal(signal.SIGTERM)
        asyncio.get_running_loop().call_later(grace, lambda: self.handle is handle and handle.signal(signal.SIGKILL))

    async def stop(self, grace: float) -> None:
        """SIGTERM, SIGKILL after `grace` seconds; no restart afterwards."""
        self.stopping = True
        self._wake.set()
        if self.handle is not None:
            self.worker.event("Normal", "Killing", f"Stopping container {self.name}")
            self.handle.signal(signal.SIGTERM)
        if self.task is None:
            return
        done, _ = await asyncio.wait({self.task}, timeout=grace)
        if not done and self.handle is not None:
            self.handle.signal(signal.SIGKILL)
        done, _ = await asyncio.wait({self.task}, timeout=5.0)
        if not done:
            self.task.cancel()


def _ran_for(rec: ContainerRecord) -> float:
    try:
        started = calendar.timegm(time.strptime(rec.started_at or "", "%Y-%m-%dT%H:%M:%SZ"))
        finished = calendar.timegm(time.strptime(rec.finished_at or "", "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return 0.0
    return max(0.0, finished - started)
