"""Leader election through a coordination.k8s.io/v1 Lease, as client-go's leaderelection does.

Every candidate tries every `retry_period` to take the Lease: it may when it is free or when its record has not
changed for `lease_duration`, judged by the candidate's own clock from when it last saw the record change (so
clocks need not agree). The holder renews every `retry_period`; when it has not renewed successfully for
`renew_deadline` (< lease_duration) it stops acting, before anyone else may take the Lease. Writes are
compare-and-swap on resourceVersion, so two candidates never both win. On a clean stop the holder releases the
Lease so the next one need not wait.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import os
import secrets
import time
import weakref
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from api.client import ApiClient, ApiClientError, Conflict, NotFound

log = logging.getLogger("raftkube.leader")
Obj = dict[str, Any]
LIVE: "weakref.WeakSet[LeaderElector]" = weakref.WeakSet()  # for the control plane's /metrics (is_leader)


@dataclass
class Timing:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("leader election needs retry period < renew deadline < lease duration, got "
                             f"{self.retry_period}, {self.renew_deadline}, {self.lease_duration}")


def identity(name: str) -> str:
    """The holderIdentity: the master's (or host's) name, `_`, a random suffix, as kube components do."""
    return f"{name or os.uname().nodename}_{secrets.token_hex(4)}"


def micro_time(at: float | None = None) -> str:
    moment = datetime.datetime.fromtimestamp(time.time() if at is None else at, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, client: ApiClient, lease_name: str, ident: str, timing: Timing | None = None,
                 namespace: str = "kube-system") -> None:
        self.client = client
        self.lease_name = lease_name
        self.namespace = namespace
        self.identity = ident
        self.timing = timing or Timing()
        self.is_leader = False
        self._observed: Obj | None = None  # the lease spec we last saw
        self._observed_at = 0.0  # our monotonic clock when it last changed
        self._lease: Obj | None = None
        LIVE.add(self)

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Forever: wait to lead, run `lead()` while leading, cancel it the moment leadership is lost.
        If `lead()` fails, the lease is handed back and the next term starts after a retry period."""
        try:
            while True:
                acquired_at = await self._acquire()
                log.info("%s: %s now leads (lease %s/%s)", self.lease_name, self.identity, self.namespace,
                         self.lease_name)
                work = asyncio.create_task(lead())
                try:
                    lost = await self._renew_until_lost(work, acquired_at)
                finally:
                    self.is_leader = False
                    work.cancel()
                    await asyncio.gather(work, return_exceptions=True)
                if lost:
                    log.warning("%s: %s lost the lease and stopped acting", self.lease_name, self.identity)
                else:
                    why = "cancelled" if work.cancelled() else repr(work.exception())
                    log.error("%s: %s stopped acting: %s; handing the lease back", self.lease_name, self.identity,
                              why)
                    await self._release()
                    await asyncio.sleep(self.timing.retry_period)
        finally:
            if self.is_leader or self._held_by_me():
                await self._release()

    async def _acquire(self) -> float:
        """Wait until we hold the lease; the monotonic time the winning try started (our term counts from it)."""
        while True:
            started = time.monotonic()
            if await self._try(self.timing.retry_period):
                self.is_leader = True
                return started
            await asyncio.sleep(self.timing.retry_period)

    async def _renew_until_lost(self, work: asyncio.Task, last_renew: float) -> bool:
        """Renew every retry period. True when the lease is lost; False when `work` failed (work that simply
        returned, having nothing to run, keeps its lease)."""
        while True:
            if work.done():
                await asyncio.sleep(self.timing.retry_period)
            else:
                await asyncio.wait({work}, timeout=self.timing.retry_period)
            if work.done() and (work.cancelled() or work.exception() is not None):
                return False
            started = time.monotonic()
            remaining = last_renew + self.timing.renew_deadline - started
            if remaining > 0 and await self._try(remaining):
                last_renew = started  # the renewal's start: the conservative end of our term
            elif time.monotonic() >= last_renew + self.timing.renew_deadline:
                return True

    async def _try(self, timeout: float) -> bool:
        try:
            return await asyncio.wait_for(self._try_acquire_or_renew(), timeout)
        except (asyncio.TimeoutError, ApiClientError, OSError) as exc:
            log.debug("%s: %s could not take or renew the lease: %s", self.lease_name, self.identity, exc)
            return False

    async def _try_acquire_or_renew(self) -> bool:
        now = time.time()
        try:
            lease = await self.client.get("leases", self.lease_name, self.namespace)
        except NotFound:
            spec = self._spec(None, now)
            try:
                self._lease = await self.client.create("leases", {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.lease_name, "namespace": self.namespace}, "spec": spec})
            except Conflict:
                return False
            self._observe(self._lease["spec"])
            return True
        spec = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or self.timing.lease_duration
        if holder and holder != self.identity and time.monotonic() < self._observed_at + duration:
            return False
        lease = {**lease, "spec": self._spec(spec, now)}
        try:
            self._lease = await self.client.update("leases", lease)
        except Conflict:
            return False
        self._observe(self._lease["spec"])
        return True

    def _spec(self, old: Obj | None, now: float) -> Obj:
        old = old or {}
        mine = old.get("holderIdentity") == self.identity
        return {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.timing.lease_duration),
                "acquireTime": old.get("acquireTime") if mine else micro_time(now), "renewTime": micro_time(now),
                "leaseTransitions": (old.get("leaseTransitions") or 0) + (0 if mine or not old else 1)}

    def _observe(self, spec: Obj) -> None:
        if spec != self._observed:
            self._observed = spec
            self._observed_at = time.monotonic()

    def _held_by_me(self) -> bool:
        return bool(self._lease and (self._lease.get("spec") or {}).get("holderIdentity") == self.identity)

    async def _release(self) -> None:
        """Hand the lease back (holder cleared, 1 s duration) so the next leader need not wait it out. A renew cut
        short by the stop may have been written all the same, so our copy is stale (409): then the lease is read
        again and, while it is still ours, released from there."""
        lease = self._lease
        try:
            async with asyncio.timeout(2.0):
                while lease is not None and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                    spec = {**(lease.get("spec") or {}), "holderIdentity": "", "leaseDurationSeconds": 1,
                            "renewTime": micro_time()}
                    try:
                        await self.client.update("leases", {**lease, "spec": spec})
                        log.info("%s: %s released the lease", self.lease_name, self.identity)
                        return
                    except Conflict:
                        lease = await self.client.get("leases", self.lease_name, self.namespace)
        except (asyncio.TimeoutError, ApiClientError, OSError):
            pass
