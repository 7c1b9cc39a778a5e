"""A pod worker: one per pod bound to the node, from its first sight to its removal.

    1. open the sandbox (directory, IP), fetch the objects its volumes name and its service account tokens, and
       write them as files (the volumes that hold tokens again whenever a token is renewed);
    2. run the init containers one after the other, each to success;
    3. run the containers, each in its ContainerRunner (restarts, probes);
    4. meanwhile write the pod's status whenever a container changes (node/pod_status.py);
    5. when the pod is marked for deletion: stop every container (SIGTERM, SIGKILL after the grace period),
       then DELETE it with gracePeriodSeconds=0, which removes the object, and remove the sandbox.
A pod already Succeeded or Failed is never run again (after a kubelet restart, say); its worker waits for deletion.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

from api.client import ApiClient, ApiClientError, NotFound
from api.event_recorder import EventRecorder
from node import pod_config, service_account_tokens
from node.container_runner import ContainerRunner
from node.pod_status import ContainerRecord, now, pod_status
from node.runtime import ContainerError, Runtime
from node.sandbox import Sandbox, Sandboxes

Obj = dict[str, Any]
log = logging.getLogger("raftkube.kubelet")
TERMINAL = ("Succeeded", "Failed")
GONE_GRACE = 2.0  # seconds given to the containers of a pod whose object was removed without waiting for us


@dataclass
class NodeContext:
    """What every pod worker of one node shares."""
    client: ApiClient
    runtime: Runtime
    sandboxes: Sandboxes
    recorder: EventRecorder
    node_name: str
    host_ip: str
    allocatable: dict[str, str] = field(default_factory=dict)
    backoff_base: float = 10.0
    probe_failures: dict[str, int] = field(default_factory=dict)  # probe kind -> failures (for /metrics)


class PodWorker:
    def __init__(self, ctx: NodeContext, pod: Obj) -> None:
        self.ctx = ctx
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.changed = asyncio.Event()
        self._updated = asyncio.Event()
        self.gone = False
        self.runners: list[ContainerRunner] = []
        self.init_records: list[ContainerRecord] = []
        self.main_records: list[ContainerRecord] = []
        self.last_written: Obj | None = None
        self.sandbox: Sandbox
        self.tokens = service_account_tokens.PodTokens(ctx.client, pod)
        self.start_time = (pod.get("status") or {}).get("startTime") or now()

    @property
    def pod_name(self) -> str:
        return self.pod["metadata"]["name"]

    @property
    def key(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod_name}"

    @property
    def terminating(self) -> bool:
        return self.gone or bool(self.pod["metadata"].get("deletionTimestamp"))

    def restarts_after(self, exit_code: int | None) -> bool:
        """Will a container of this pod run again after a run that ended with `exit_code` (restartPolicy)?"""
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        return not self.terminating and (policy == "Always" or (policy == "OnFailure" and exit_code != 0))

    def update(self, pod: Obj) -> None:
        self.pod = pod
        self._updated.set()

    def deleted(self) -> None:
        self.gone = True
        self._updated.set()

    def event(self, type_: str, reason: str, message: str) -> None:
        self.ctx.recorder.record(self.pod, type_, reason, message)

    def grace_period(self) -> float:
        meta, spec = self.pod["metadata"], self.pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return float(grace) if isinstance(grace, (int, float)) else 30.0

    # -- the pod's life -------------------------------------------------------------------

    async def run(self) -> None:
        spec = self.pod.get("spec") or {}
        host_ip = self.ctx.host_ip if spec.get("hostNetwork") else None
        self.sandbox = self.ctx.sandboxes.open(self.pod, host_network_ip=host_ip)
        self.init_records = [self._record(c) for c in spec.get("initContainers") or []]
        self.main_records = [self._record(c) for c in spec.get("containers") or []]
        writer = asyncio.get_running_loop().create_task(self._write_statuses())
        live = None
        if (self.pod.get("status") or {}).get("phase") not in TERMINAL:
            live = asyncio.get_running_loop().create_task(self._live())
        self.changed.set()
        try:
            while not self.terminating:
                await self._updated.wait()
                self._updated.clear()
            await self._stop(GONE_GRACE if self.gone else self.grace_period())
            if live is not None:
                live.cancel()
            if not self.gone:
                await self._write_status()
                await self._confirm_deletion()
            self.ctx.sandboxes.remove(self.uid)  # not when cancelled: a kubelet started again adopts the pod
        finally:
            writer.cancel()

    def _record(self, container: Obj) -> ContainerRecord:
        """From the sandbox (a restarted kubelet), else from the API's status, else new."""
        name = container.get("name", "")
        found = self.sandbox.load_record(name)
        if found is None:
            statuses = (self.pod.get("status") or {}).get("containerStatuses", []) + \
                       (self.pod.get("status") or {}).get("initContainerStatuses", [])
            found = _record_from_status(next((s for s in statuses if s.get("name") == name), None))
        record = found or ContainerRecord(name=name)
        record.image = str(container.get("image") or "")
        return record

    async def _live(self) -> None:
        spec = self.pod.get("spec") or {}
        await self._prepare()
        renewer = asyncio.get_running_loop().create_task(service_account_tokens.renew(self.tokens, self._write_tokens))
        try:
            for container, record in zip(spec.get("initContainers") or [], self.init_records):
                if record.succeeded:
                    continue
                runner = ContainerRunner(self, container, record, init=True)
                self.runners = [runner]
                if not await runner.begin():
                    return  # failed with restartPolicy Never (the pod is Failed), or stopped
            self.runners = [ContainerRunner(self, c, r, init=False)
                            for c, r in zip(spec.get("containers") or [], self.main_records)]
            await asyncio.gather(*(r.begin() for r in self.runners))
        finally:
            renewer.cancel()

    async def _config(self) -> pod_config.PodConfig:
        """What the pod's volumes name, with fresh service account tokens when its runtime writes them."""
        config = await pod_config.fetch(self.ctx.client, self.pod)
        if self.ctx.runtime.files:
            config.tokens = await self.tokens.fetch()
        return config

    async def _write_tokens(self, tokens: dict) -> None:
        """Renewed tokens: the volumes that hold them, written again (with what else they project)."""
        config = await pod_config.fetch(self.ctx.client, self.pod)
        config.tokens = tokens
        await self.ctx.runtime.prepare(self.sandbox, service_account_tokens.with_token_volumes(self.pod), config)

    async def _prepare(self) -> None:
        """The pod's volumes, retried until the objects they name exist (FailedMount events meanwhile)."""
        reported = ""
        while not self.terminating:
            try:
                await self.ctx.runtime.prepare(self.sandbox, self.pod, await self._config())
                return
            except ContainerError as exc:
                if exc.message != reported:
                    self.event("Warning", "FailedMount", exc.message)
                    reported = exc.message
            except (ApiClientError, OSError, asyncio.TimeoutError) as exc:
                log.warning("pod %s: could not prepare its volumes: %s", self.key, exc)
            except Exception as exc:  # noqa: BLE001 - a volume spec of the wrong shape: say so, never crash
                message = f"the volumes of pod {self.key} cannot be made: {type(exc).__name__}: {exc}"
                if message != reported:
                    self.event("Warning", "FailedMount", message)
                    reported = message
            await asyncio.sleep(2.0)

    async def _stop(self, grace: float) -> None:
        for runner in self.runners:
            runner.stopping = True  # none may start again while the others stop
        await asyncio.gather(*(r.stop(grace) for r in self.runners))

    async def _confirm_deletion(self) -> None:
        """The kubelet's DELETE with grace 0: the API server removes the object now. Retried until it is done (the
        client already moves between masters): a pod left marked would never go."""
        for attempt in itertools.count():
            try:
                await self.ctx.client.delete("pods", self.pod_name, self.pod["metadata"]["namespace"],
                                             grace_period_seconds=0, uid=self.uid)
                return
            except NotFound:
                return
            except (ApiClientError, OSError, asyncio.TimeoutError) as exc:
                if getattr(exc, "status", 0) == 409:  # another pod of that name now: ours is gone
                    return
                log.warning("pod %s: could not confirm its deletion (%s); retrying", self.key, exc)
                await asyncio.sleep(min(0.2 * 2 ** min(attempt, 5), 5.0))

    # -- status ---------------------------------------------------------------------------

    async def _write_statuses(self) -> None:
        while True:
            await self.changed.wait()
            await asyncio.sleep(0.05)  # one write for changes that come together
            self.changed.clear()
            await self._write_status()

    async def _write_status(self) -> None:
        previous = self.last_written or self.pod.get("status") or {}
        status = pod_status({**self.pod, "status": previous}, self.init_records, self.main_records,
                            pod_ip=self.sandbox.ip, host_ip=self.ctx.host_ip, start_time=self.start_time)
        if status == self.last_written:
            return
        meta = self.pod["metadata"]
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                "status": status}
        try:
            await self.ctx.client.update_status("pods", body)
            self.last_written = status
        except NotFound:
            return
        except (ApiClientError, OSError, asyncio.TimeoutError) as exc:
            log.warning("pod %s: could not write its status (%s); retrying", self.key, exc)
            asyncio.get_running_loop().call_later(1.0, self.changed.set)


def _record_from_status(status: Obj | None) -> ContainerRecord | None:
    """A container record from the API's containerStatus (what a restarted fake kubelet knows)."""
    if not isinstance(status, dict):
        return None
    state = status.get("state") or {}
    rec = ContainerRecord(name=status.get("name", ""), restart_count=int(status.get("restartCount") or 0),
                          container_id=str(status.get("containerID") or ""), last=status.get("lastState") or {},
                          ready=bool(status.get("ready")), started=bool(status.get("started")))
    if "running" in state:
        rec.state, rec.reason, rec.started_at = "running", "", (state["running"] or {}).get("startedAt")
    elif "terminated" in state:
        t = state["terminated"] or {}
        rec.state, rec.exit_code, rec.reason = "terminated", int(t.get("exitCode") or 0), t.get("reason", "")
        rec.started_at, rec.finished_at = t.get("startedAt"), t.get("finishedAt")
    else:
        return None
    return rec
