"""The masters' failpoints (`--enable-failpoints`, served at /debug/failpoints on the KV port): Raft links cut and
healed, clients dropped, the wall clock stepped, by `raftkube chaos` on a local cluster and by the campaign's nemesis.
They are off unless asked for (`raftkube up --enable-failpoints`): whoever reaches a KV port could use them."""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any, Callable


class FailpointError(Exception):
    pass


def failpoint(m: dict[str, Any], body: dict[str, Any], tls: ssl.SSLContext | None) -> dict[str, Any]:
    """POST a failpoint change to master `m` ({"cut": [raft addresses]}, {"heal": [...]}, {"clients": bool},
    {"clock_step": seconds}: raftkube/master.py `failpoints`), through its KV port's TLS with `tls`
    (raftkube/kv_access.py)."""
    req = urllib.request.Request(m["kv"] + "/debug/failpoints", data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=3, context=tls) as r:
            return json.load(r)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise FailpointError(f"master {m['name']} serves no failpoints: its cluster was started without them. "
                                 "Start it with `raftkube up --enable-failpoints` (they are off by default: anyone "
                                 "who reaches a KV port could cut masters off)") from None
        raise FailpointError(f"master {m['name']} refused the failpoint {body}: {exc.code} "
                             f"{exc.read().decode(errors='replace')}") from None
    except OSError as exc:
        raise FailpointError(f"master {m['name']} did not take the failpoint ({exc}); is it running (not "
                             "paused)?") from None


def split(groups: list[list[dict[str, Any]]], change: str, tls: ssl.SSLContext | None,
          passed_over: Callable[[dict[str, Any]], bool] = lambda m: False) -> None:
    """Cut (or heal) the Raft links between masters in different groups, both ends of every link. A master that
    does not take it fails the whole, unless `passed_over(master)` says to go on without it."""
    for group in groups:
        outside = [o["raft"] for g in groups if g is not group for o in g]
        for m in group:
            try:
                failpoint(m, {change: outside}, tls)
            except FailpointError:
                if not passed_over(m):
                    raise
