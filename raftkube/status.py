"""`raftkube status`: every master's Raft role, term, commit and applied index (through its KV API), who holds
the controller-manager and scheduler Leases, and each node's readiness and pod count (through the kube API).

For scripts: `-o json` prints the same as one JSON object, and the exit code is 1 when there is no leader or a
master cannot be reached (0 when every master answers and they agree on one leader). `--compose` reads the
compose cluster of the current directory (raftkube/compose_cluster.py) instead of a local one."""
from __future__ import annotations

import argparse
import json
import os
import ssl
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from raftkube import kv_access
from raftkube.compose_cluster import ComposeCluster
from raftkube.local_cluster import LocalCluster


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", default=".raftkube")
    p.add_argument("--compose", action="store_true", help="the compose cluster of this directory (make compose-up)")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    p.add_argument("--watch", nargs="?", type=float, const=1.0, metavar="SECONDS",
                   help="redraw every SECONDS (default 1) until Ctrl-C: watch a failover live")


def kv_status(kv_url: str, tls: ssl.SSLContext | None, timeout: float = 1.5) -> dict[str, Any] | None:
    req = urllib.request.Request(kv_url + "/v3/maintenance/status", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=tls) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


def role(st: dict[str, Any]) -> str:
    """leader, follower or no leader, from a master's /v3/maintenance/status answer."""
    leader = st.get("leader", "0")
    return "leader" if leader == st["header"]["member_id"] else "follower" if leader != "0" else "no leader"


def collect(info: dict[str, Any]) -> list[dict[str, Any]]:
    tls = kv_access.context(info.get("kv_tls"))
    with ThreadPoolExecutor(len(info["masters"])) as pool:
        answers = list(pool.map(lambda m: kv_status(m["kv"], tls), info["masters"]))
    rows = []
    for m, st in zip(info["masters"], answers):
        row = {"name": m["name"], **{k: m[k] for k in ("pid", "container") if k in m}, "reachable": st is not None}
        if st:
            row.update(role=role(st), term=int(st.get("raftTerm", 0)), commit=int(st.get("raftIndex", 0)),
                       applied=int(st.get("raftAppliedIndex", 0)), revision=int(st["header"]["revision"]))
        rows.append(row)
    leader_commit = max((r["commit"] for r in rows if r.get("role") == "leader"), default=None)
    for r in rows:
        if leader_commit is not None and r["reachable"]:
            r["lag"] = max(0, leader_commit - r["applied"])
    return rows


def kube_get(info: dict[str, Any], path: str, timeout: float = 1.5) -> dict[str, Any] | None:
    """GET from the first master that answers, served from its own replica (resourceVersion=0): status must
    work without quorum too."""
    from raftkube import up  # the token is in up's state dir

    token = up.token_for(info["state_dir"], "admin") if os.path.exists(
        os.path.join(info["state_dir"], "tokens.csv")) else None
    context = ssl.create_default_context(cafile=info["ca"]) if info.get("ca") else None
    for api in [m["api"] for m in info["masters"] if m.get("api")] or [info["api"]]:
        req = urllib.request.Request(f"{api}{path}?resourceVersion=0",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
                return json.load(r)
        except (OSError, ValueError):
            continue
    return None


def kube_summary(info: dict[str, Any]) -> dict[str, Any]:
    """Lease holders and nodes with readiness and how many unfinished pods each runs."""
    leases = kube_get(info, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases") or {}
    holders = {lease["metadata"]["name"]: (lease.get("spec") or {}).get("holderIdentity") or "-"
               for lease in leases.get("items") or []}
    nodes = (kube_get(info, "/api/v1/nodes") or {}).get("items") or []
    pods = (kube_get(info, "/api/v1/pods") or {}).get("items") or []
    per_node: dict[str, int] = {}
    for pod in pods:
        if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            node = (pod.get("spec") or {}).get("nodeName") or "(unscheduled)"
            per_node[node] = per_node.get(node, 0) + 1
    rows = []
    for node in nodes:
        ready = next((c.get("status") for c in (node.get("status") or {}).get("conditions") or []
                      if c.get("type") == "Ready"), "Unknown")
        name = node["metadata"]["name"]
        rows.append({"name": name, "ready": {"True": "Ready", "False": "NotReady"}.get(ready, "Unknown"),
                     "pods": per_node.get(name, 0)})
    return {"controller-manager": holders.get("kube-controller-manager", "-"),
            "scheduler": holders.get("kube-scheduler", "-"), "nodes": rows,
            "unscheduled": per_node.get("(unscheduled)", 0)}


def render(rows: list[dict[str, Any]], kube: dict[str, Any] | None = None) -> str:
    where = "container" if any("container" in r for r in rows) else "pid"  # a compose cluster's, or processes
    lines = [f"{'MASTER':8} {where.upper():>9} {'ROLE':11} {'TERM':>5} {'COMMIT':>8} {'APPLIED':>8} {'LAG':>5} "
             f"{'REVISION':>9}"]
    for r in rows:
        if not r["reachable"]:
            lines.append(f"{r['name']:8} {r.get(where, '-'):>9} {'unreachable':11}")
            continue
        lines.append(f"{r['name']:8} {r.get(where, '-'):>9} {r['role']:11} {r['term']:>5} {r['commit']:>8} "
                     f"{r['applied']:>8} {r.get('lag', '-'):>5} {r['revision']:>9}")
    leaders = [r["name"] for r in rows if r.get("role") == "leader"]
    lines.append(f"leader: {', '.join(leaders) if leaders else 'none (no quorum?)'}")
    if kube is not None:
        lines.append(f"controller-manager: {kube['controller-manager']}    scheduler: {kube['scheduler']}")
        lines.append(f"{'NODE':12} {'STATUS':9} {'PODS':>5}")
        lines += [f"{n['name']:12} {n['ready']:9} {n['pods']:>5}" for n in kube["nodes"]] or ["(no nodes)"]
        if kube["unscheduled"]:
            lines.append(f"{kube['unscheduled']} pod(s) not scheduled yet")
    return "\n".join(lines)


def snapshot(cluster: LocalCluster | ComposeCluster) -> dict[str, Any]:
    """Everything status shows, read afresh (pids and containers change): {"masters", "leader", "kube"}."""
    info = cluster.info()
    rows = collect(info)
    leaders = [r["name"] for r in rows if r.get("role") == "leader"]
    return {"masters": rows, "leader": leaders[0] if len(leaders) == 1 else None, "kube": kube_summary(info)}


def healthy(state: dict[str, Any]) -> bool:
    """One leader, and every master answers."""
    return state["leader"] is not None and all(r["reachable"] for r in state["masters"])


def show(state: dict[str, Any], output: str) -> str:
    return json.dumps(state, indent=2) if output == "json" else render(state["masters"], state["kube"])


def target(args: argparse.Namespace) -> LocalCluster | ComposeCluster:
    """The cluster a command acts on: the compose one of this directory, or the local one of --state-dir."""
    return ComposeCluster() if args.compose else LocalCluster(args.state_dir)


def run(args: argparse.Namespace) -> int:
    cluster = target(args)
    if not args.watch:
        state = snapshot(cluster)
        print(show(state, args.output))
        return 0 if healthy(state) else 1
    try:
        while True:
            text = show(snapshot(cluster), args.output)
            print(f"\033[H\033[J{time.strftime('%H:%M:%S')}  (Ctrl-C to stop)\n{text}", flush=True)
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0
