"""`raftkube member list|add|remove`: grow a running local cluster 3 -> 5 -> 7 and shrink it back, one master at a
time, without downtime.

    add            plan a new master (next name, free ports), `member add` it through the KV API, then start it
                   with every current member as its peers (etcd's order: the cluster knows it before it speaks)
    remove NAME    `member remove` through the leader (which hands leadership over first if NAME leads), then
                   stop NAME's process
    list           the members as the cluster sees them

cluster.json and layout.json follow, so `status`, `chaos` and the next `up` see the new topology.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from typing import Any

from raftkube import chaos, cluster_file, kv_access, kv_pki, up
from raftkube.master import id64


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "add", "remove"])
    p.add_argument("master", nargs="?", help="remove: the master's name, e.g. m4")
    p.add_argument("--state-dir", default=".raftkube")


class MemberError(Exception):
    pass


RETRY_FOR = 15.0  # seconds: an election, or the previous change still committing


def call(info: dict[str, Any], path: str, body: dict[str, Any], first: str | None = None) -> dict[str, Any]:
    """POST to the KV API of master `first` (else of the first that answers); MemberError with etcd's message.
    An answer that says nothing was done and to retry (no leader yet, another change still committing) is
    retried for up to RETRY_FOR seconds."""
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            return _call_once(info, path, body, first)
        except _Retry as exc:
            if time.monotonic() > deadline:
                raise MemberError(str(exc)) from None
            time.sleep(0.5)


class _Retry(Exception):
    pass


def _call_once(info: dict[str, Any], path: str, body: dict[str, Any], first: str | None) -> dict[str, Any]:
    masters = sorted(info["masters"], key=lambda m: m["name"] != first)
    last = "no master answered"
    tls = kv_access.context(info.get("kv_tls"))
    for m in masters:
        req = urllib.request.Request(m["kv"] + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=15, context=tls) as r:
                return json.load(r)
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read() or b"{}")
            message = f"{m['name']} answered {exc.code}: {answer.get('message', answer)}"
            if exc.code == 503 and str(answer.get("message", "")).endswith("retry"):
                raise _Retry(message) from None
            raise MemberError(message) from None
        except OSError as exc:
            last = f"{m['name']}: {exc}"
    raise MemberError(last)


def list_members(info: dict[str, Any]) -> list[dict[str, Any]]:
    return call(info, "/v3/cluster/member/list", {}).get("members") or []


def add(info: dict[str, Any], state_dir: str) -> dict[str, Any]:
    names = {m["name"] for m in info["masters"]}
    number = max(int(n[1:]) for n in names if n[1:].isdigit()) + 1
    entry = {"name": f"m{number}", "raft": f"127.0.0.1:{up.free_port()}", "kv": f"127.0.0.1:{up.free_port()}",
             "api": f"127.0.0.1:{up.free_port()}"}
    kv_pki.ensure(kv_pki.directory(state_dir), {entry["name"]: up.kv_server_names(entry["kv"])})
    call(info, "/v3/cluster/member/add", {"peerURLs": [f"http://{entry['raft']}"]}, chaos.leader(info))
    template = info["masters"][0]["argv"]
    current = [m["raft"] for m in info["masters"]]
    argv = up.master_argv(entry, [*[{"raft": r} for r in current], entry], state_dir,
                          template[template.index("--secret-file") + 1], _security_flags(template))
    m = up.master_entry(entry, up.spawn(argv, os.path.join(state_dir, "logs", f"{entry['name']}.log")), argv)
    info["masters"].append(m)
    _save(info, state_dir)
    return m


def cycle(info: dict[str, Any], name: str) -> None:
    """Remove master `name`, wipe its data, add it back under the same address and start it again: it rejoins
    empty and catches up from the leader (a membership fault for the nemesis)."""
    m = cluster_file.find(info, name)
    call(info, "/v3/cluster/member/remove", {"ID": str(id64(m["raft"]))}, chaos.leader(info))
    _stop(m)
    shutil.rmtree(m["data_dir"], ignore_errors=True)
    call(info, "/v3/cluster/member/add", {"peerURLs": [f"http://{m['raft']}"]}, chaos.leader(info))
    up.restart_master(info, name)


def _stop(m: dict[str, Any]) -> None:
    """It is out of the cluster: stop it before it campaigns, and before its address may be added back (a new
    member there must not meet the old one's messages): SIGKILL if it is still draining after the grace."""
    up.terminate([m["pid"]])


def remove(info: dict[str, Any], state_dir: str, name: str) -> None:
    m = cluster_file.find(info, name)
    call(info, "/v3/cluster/member/remove", {"ID": str(id64(m["raft"]))}, chaos.leader(info))
    _stop(m)
    info["masters"] = [o for o in info["masters"] if o is not m]
    _save(info, state_dir)


def _security_flags(template: list[str]) -> tuple[str, ...]:
    """Everything in a master's command line after the per-master flags master_argv writes itself (the last of
    them is --secret-file FILE)."""
    return tuple(template[template.index("--secret-file") + 2:])


def _save(info: dict[str, Any], state_dir: str) -> None:
    cluster_file.write(state_dir, info)
    layout_path = os.path.join(state_dir, "layout.json")
    if os.path.exists(layout_path):
        with open(layout_path) as f:
            layout = json.load(f)
        layout["masters"] = [{"name": m["name"], "raft": m["raft"], "kv": m["kv"].split("://")[1],
                              "api": m["api"].split("://")[1]}
                             for m in info["masters"]]
        with open(layout_path, "w") as f:
            json.dump(layout, f, indent=2)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except MemberError as exc:
        raise SystemExit(f"raftkube member: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    state_dir = os.path.abspath(args.state_dir)
    info = cluster_file.read(state_dir)
    if args.action == "list":
        for member in list_members(info):
            print(f"{member.get('name', '?'):6} {member['ID']:>20}  {member['peerURLs'][0]:28} "
                  f"{(member.get('clientURLs') or [''])[0]}")
        return 0
    if args.action == "add":
        m = add(info, state_dir)
        print(f"added {m['name']}: raft {m['raft']}, kv {m['kv']}, api {m['api']} (pid {m['pid']})")
        return 0
    if not args.master:
        raise SystemExit("raftkube member remove: which master? (e.g. m4)")
    remove(info, state_dir, args.master)
    print(f"removed {args.master}")
    return 0
