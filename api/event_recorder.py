"""Recording Kubernetes Events from API clients (controllers, scheduler, kubelets), as client-go's recorder.

`record(obj, "Normal", "SuccessfulCreate", "Created pod: web-1")` returns at once; a background task writes the
Event. A repeat of the same (object, type, reason, message) bumps the existing Event's count and lastTimestamp
instead of writing a new one, so a crash loop is one Event with a rising count, not thousands.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
from collections import OrderedDict
from typing import Any

from api.client import ApiClient, ApiClientError

Obj = dict[str, Any]
log = logging.getLogger("raftkube.events")
MAX_REMEMBERED = 4096  # events whose counts we keep bumping; older ones start a new Event
MAX_PENDING = 4000  # events waiting to be written; beyond that they are dropped (and logged), never block


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def involved(obj: Obj) -> Obj:
    meta = obj["metadata"]
    ref = {"kind": obj.get("kind", ""), "name": meta["name"], "uid": meta.get("uid", ""),
           "apiVersion": obj.get("apiVersion", ""), "resourceVersion": meta.get("resourceVersion", "")}
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    return ref


class EventRecorder:
    def __init__(self, client: ApiClient, component: str, host: str = "", writers: int = 8) -> None:
        self.client = client
        self.component = component
        self.host = host
        self._seen: OrderedDict[tuple, Obj] = OrderedDict()  # (uid, type, reason, message) -> the Event written
        # Several writers, so a burst (a scheduler binding thousands of pods) is not dropped; the events of one
        # object always go to the same writer, so its counts are bumped in order, never created twice.
        self._queues: list[asyncio.Queue[tuple[Obj, str, str, str, str]]] = [
            asyncio.Queue(MAX_PENDING // writers) for _ in range(writers)]
        self._tasks: list[asyncio.Task] = []

    def record(self, obj: Obj, type_: str, reason: str, message: str, component: str | None = None) -> None:
        """Queue an Event; `component` names the reporter when it is not the recorder's (one controller of many)."""
        if not self._tasks or any(t.done() for t in self._tasks):
            for t in self._tasks:
                t.cancel()
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._write_all(q)) for q in self._queues]
        meta = obj["metadata"]
        queue = self._queues[hash(meta.get("uid") or meta["name"]) % len(self._queues)]
        try:
            queue.put_nowait((obj, type_, reason, message, component or self.component))
        except asyncio.QueueFull:
            log.warning("event dropped (too many pending): %s %s %s", reason, meta["name"], message)

    async def flush(self) -> None:
        """Wait until every recorded event is written (tests, clean shutdown)."""
        for queue in self._queues:
            await queue.join()

    async def _write_all(self, queue: asyncio.Queue) -> None:
        while True:
            item = await queue.get()
            try:
                await self._write(*item)
            except (ApiClientError, OSError, asyncio.TimeoutError) as exc:
                log.warning("could not record event %s on %s: %s", item[2], item[0]["metadata"]["name"], exc)
            finally:
                queue.task_done()

    async def _write(self, obj: Obj, type_: str, reason: str, message: str, component: str) -> None:
        ref = involved(obj)
        namespace = ref.get("namespace") or "default"
        key = (ref["uid"] or f"{ref['kind']}/{namespace}/{ref['name']}", type_, reason, message, component)
        now = _now()
        earlier = self._seen.get(key)
        if earlier is not None:
            count = (earlier.get("count") or 1) + 1
            try:
                event = await self.client.patch("events", earlier["metadata"]["name"],
                                                {"count": count, "lastTimestamp": now}, namespace)
                self._seen.move_to_end(key)
                self._seen[key] = event
                return
            except ApiClientError as exc:
                if exc.status != 404:
                    raise
        event = await self.client.create("events", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{ref['name']}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": ref, "type": type_, "reason": reason, "message": message,
            "source": {"component": component, **({"host": self.host} if self.host else {})},
            "reportingComponent": component, "reportingInstance": self.host or component,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1}, namespace)
        self._seen[key] = event
        while len(self._seen) > MAX_REMEMBERED:
            self._seen.popitem(last=False)
