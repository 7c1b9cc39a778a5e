"""A container's log as `pods/log` serves it, and one run's log followed as it grows (for `logs -f` and attach).

    GET /containerLogs/NAMESPACE/POD/CONTAINER?follow=true&tailLines=N&sinceSeconds=S&sinceTime=T&timestamps=true
                                              &limitBytes=N&previous=true

The log files are node/log_format.py's lines (written by node/log_shim.py): current.log (and current.log.1, its
rotated first part) for the run now, previous.log for the one before. `follow` streams new lines of this run and,
when the container is restarted (restartPolicy), of the runs after it, until the pod goes or the container ends
for good. Kubernetes' kubelet ends the stream with the run, and kubectl 1.32 does not reconnect: `kubectl logs -f`
there stops at a crash; here it shows the restart too, which is what one follows a crashing container for.
"""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import IO, AsyncIterator, Callable

from aiohttp import web
from multidict import MultiMapping

from node import log_format
from node.log_format import Entry
from node.pod_status import ContainerRecord

FOLLOW_POLL = 0.1
TRUE = ("true", "1")


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since_ns: int | None = None
    limit_bytes: int | None = None


def options(query: MultiMapping[str]) -> LogOptions:
    """PodLogOptions from the query; ValueError with a message for a value that is not one."""
    def integer(name: str) -> int | None:
        value = query.get(name)
        if value in (None, ""):
            return None
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{name} must be an integer, not {value!r}") from None

    since_ns = None
    if query.get("sinceSeconds") and query.get("sinceTime"):
        raise ValueError("at most one of sinceSeconds or sinceTime may be given")
    seconds = integer("sinceSeconds")
    if seconds is not None:
        if seconds < 1:
            raise ValueError(f"sinceSeconds must be greater than 0, not {seconds}")
        since_ns = time.time_ns() - seconds * 1_000_000_000
    elif query.get("sinceTime"):
        since_ns = log_format.parse_time(query["sinceTime"])
    limit = integer("limitBytes")
    if limit is not None and limit < 1:
        raise ValueError(f"limitBytes must be greater than 0, not {limit}")
    return LogOptions(follow=query.get("follow") in TRUE, previous=query.get("previous") in TRUE,
                      timestamps=query.get("timestamps") in TRUE, tail_lines=integer("tailLines"),
                      since_ns=since_ns, limit_bytes=limit)


class RunLog:
    """One run's log file, read to its end and then followed while `running()` says the run goes on. The file is
    read through an open descriptor, so a rename (rotation, or the run ending) does not lose what it held."""

    def __init__(self, path: str, running: Callable[[], bool]) -> None:
        self.path = path
        self.running = running
        self._file: IO[bytes] | None = None
        self._pending = b""  # a line still being written

    def existing(self) -> list[Entry]:
        """What the run wrote so far (its rotated part first)."""
        data = b""
        try:
            with open(self.path + ".1", "rb") as f:
                data = f.read()
        except OSError:
            pass
        return log_format.parse_all(data) + self._read()

    def skip_existing(self) -> None:
        """Start at the end: only what comes from now (attach)."""
        self._read()

    def _read(self) -> list[Entry]:
        if self._file is None:
            try:
                self._file = open(self.path, "rb")
            except OSError:
                return []
        data = self._pending + self._file.read()
        cut = data.rfind(b"\n") + 1
        self._pending = data[cut:]
        return log_format.parse_all(data[:cut])

    def _rotated(self) -> bool:
        try:
            return self._file is None or os.stat(self.path).st_ino != os.fstat(self._file.fileno()).st_ino
        except OSError:
            return False

    async def follow(self) -> AsyncIterator[list[Entry]]:
        """New entries as they come, until the run has ended and everything it wrote was read."""
        try:
            while True:
                entries = self._read()
                if entries:
                    yield entries
                    continue
                ended = not self.running()
                if self._rotated() and not ended:  # the shim began a new file: read on there
                    if self._file is not None:
                        self._file.close()
                    self._file, self._pending = None, b""
                    continue
                if ended:
                    return
                await asyncio.sleep(FOLLOW_POLL)
        finally:
            self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def run_of(record: ContainerRecord, gone: Callable[[], bool]) -> Callable[[], bool]:
    """Whether the run `record` has now is still the one running (a restart starts another)."""
    container_id = record.container_id if record.state == "running" else None
    return lambda: container_id is not None and record.state == "running" and \
        record.container_id == container_id and not gone()


async def next_run(record: ContainerRecord, ended: str, gone: Callable[[], bool],
                   restarts: Callable[[int | None], bool]) -> bool:
    """Wait for the run after the one whose container id was `ended`; False if there will be none."""
    while not gone():
        if record.state == "running" and record.container_id != ended:
            return True
        if record.state == "terminated" and record.container_id == ended and not restarts(record.exit_code):
            return False
        await asyncio.sleep(FOLLOW_POLL)
    return False


async def serve(request: web.Request, *, log_path: str, previous_path: str, record: ContainerRecord,
                gone: Callable[[], bool], restarts: Callable[[int | None], bool], pod: str) -> web.StreamResponse:
    """`restarts(exit_code)`: will the container run again after a run that ended so (the pod's restartPolicy)?"""
    try:
        opts = options(request.query)
    except ValueError as exc:
        return web.Response(status=400, text=str(exc))
    if opts.previous and not os.path.exists(previous_path):
        return web.Response(status=400, text=f'previous terminated container "{record.name}" in pod "{pod}" not found')
    log = RunLog(previous_path if opts.previous else log_path,
                 (lambda: False) if opts.previous or not opts.follow else run_of(record, gone))
    entries = log_format.select(log.existing(), tail_lines=opts.tail_lines, since_ns=opts.since_ns)
    body = log_format.render(entries, timestamps=opts.timestamps)
    if not opts.follow:
        log.close()
        return web.Response(body=body[:opts.limit_bytes], content_type="text/plain")
    resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await resp.prepare(request)
    budget = opts.limit_bytes if opts.limit_bytes is not None else -1
    continuing = bool(entries) and entries[-1].partial
    try:
        budget = await _write(resp, body, budget)
        while budget != 0:
            run = record.container_id
            async for new in log.follow():
                if budget == 0:
                    break
                new = log_format.select(new, since_ns=opts.since_ns)
                budget = await _write(resp, log_format.render(new, timestamps=opts.timestamps, continuing=continuing),
                                      budget)
                continuing = bool(new) and new[-1].partial
            if budget == 0 or not await next_run(record, run, gone, restarts):
                break
            log, continuing = RunLog(log_path, run_of(record, gone)), False
    except (ConnectionError, asyncio.CancelledError):
        pass  # the client went away
    finally:
        log.close()
    return resp


async def _write(resp: web.StreamResponse, data: bytes, budget: int) -> int:
    """Write at most `budget` bytes (all when it is negative); what is left of it."""
    if budget >= 0:
        data = data[:budget]
        budget -= len(data)
    if data:
        await resp.write(data)
    return budget
