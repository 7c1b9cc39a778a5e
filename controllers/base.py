"""What every controller shares: the context it runs in and the worker loop with the one retry policy.

A controller subscribes to informers in `__init__` (handlers only enqueue keys), and implements `sync(key)`: read
the cache, make one idempotent step toward the desired state through the API, return. A sync that raises is
retried with the workqueue's backoff; a 409 Conflict (someone wrote first) is retried the same way, quietly.
"""
from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Histogram

from api.client import ApiClient, ApiClientError, Conflict
from api.event_recorder import EventRecorder
from controllers.informer import Informers, key_of
from controllers.workqueue import WorkQueue

Obj = dict[str, Any]
# Live controllers, for the control plane's /metrics (raftkube/control_plane.py); counts live on each instance.
LIVE: "weakref.WeakSet[Controller]" = weakref.WeakSet()


@dataclass
class Options:
    """Tunables with Kubernetes' defaults; `raftkube controller-manager` has a flag for each."""
    node_monitor_grace_period: float = 40.0  # a node whose Lease is older is Ready=Unknown
    pod_eviction_timeout: float = 300.0  # default toleration of node.kubernetes.io/unreachable|not-ready
    workers: int = 2  # concurrent syncs per controller
    root_ca: str = ""  # the cluster CA's certificate (PEM), published in every namespace as kube-root-ca.crt
    service_account_credentials: bool = True  # each controller acts as its own service account
    controllers: tuple[str, ...] = ("*",)  # the controller-manager's controllers to run, by name; * for all
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    client: ApiClient
    informers: Informers
    recorder: EventRecorder
    options: Options = field(default_factory=Options)


class Controller:
    name = "controller"
    component = ""  # the Event source Kubernetes' own controller reports as, e.g. "replicaset-controller"
    service_account: str | None = None  # who it acts as, in kube-system (controllers/credentials.py); None: the
    # component's own identity (the scheduler's)

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.queue = WorkQueue()
        self.log = logging.getLogger(f"raftkube.{self.name}")
        self.sync_errors = 0
        self.results: dict[str, int] = {}  # outcomes a controller counts itself (the scheduler's attempts)
        self.sync_seconds = Histogram("sync_seconds", "one sync", registry=None)  # not global: read by LIVE
        LIVE.add(self)

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def record(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.ctx.recorder.record(obj, type_, reason, message, self.component or None)

    def count(self, result: str) -> None:
        self.results[result] = self.results.get(result, 0) + 1

    async def sync(self, key: str) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        workers = [asyncio.create_task(self._worker()) for _ in range(self.ctx.options.workers)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            self.queue.shutdown()

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            started = time.perf_counter()
            try:
                await self.sync(key)
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Conflict:
                self.queue.retry(key)
            except Exception as exc:
                self.sync_errors += 1
                delay = self.queue.retry(key)
                self.log.warning("%s: sync %s failed (retry in %.2fs): %s", self.name, key, delay, exc,
                                 exc_info=not isinstance(exc, (ApiClientError, OSError)))  # a bug: the trace
            finally:
                self.queue.done(key)
                self.sync_seconds.observe(time.perf_counter() - started)
