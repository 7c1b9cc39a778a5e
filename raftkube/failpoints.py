"""The masters' failpoints (`--enable-failpoints`, served at /debug/failpoints on the KV port): Raft links cut and
healed, stale reads, clients dropped, by `raftkube chaos` on a local cluster and by the campaign's nemesis."""
from __future__ import annotations

import json
import ssl
import urllib.request
from typing import Any


class FailpointError(Exception):
    pass


def failpoint(m: dict[str, Any], body: dict[str, Any], tls: ssl.SSLContext | None) -> dict[str, Any]:
    """POST a failpoint change to master `m` ({"cut": [raft addresses]}, {"heal": [...]}, {"stale_reads": bool}),
    through its KV port's TLS with `tls` (raftkube/kv_access.py)."""
    req = urllib.request.Request(m["kv"] + "/debug/failpoints", data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=3, context=tls) as r:
            return json.load(r)
    except OSError as exc:
        raise FailpointError(f"master {m['name']} did not take the failpoint ({exc}); is it running (not paused), "
                             "and was it started with --enable-failpoints (as `up` does)?") from None


def split(groups: list[list[dict[str, Any]]], change: str, tls: ssl.SSLContext | None) -> None:
    """Cut (or heal) the Raft links between masters in different groups, both ends of every link."""
    for group in groups:
        outside = [o["raft"] for g in groups if g is not group for o in g]
        for m in group:
            failpoint(m, {change: outside}, tls)
