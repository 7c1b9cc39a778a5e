"""metrics.k8s.io/v1beta1, which `kubectl top` reads: NodeMetrics and PodMetrics, asked of the kubelets.

In Kubernetes, metrics-server scrapes every kubelet and serves this group through the aggregation layer (an
APIService). Here the API server asks at request time: the /stats/summary of each node concerned (node/stats.py), in
parallel, each bounded by a short timeout; a node that does not answer is left out, as metrics-server leaves out a
node it could not scrape.

    kubectl top pods -l app=web --containers   GET /apis/metrics.k8s.io/v1beta1/namespaces/NS/pods?labelSelector=...
    kubectl top pod web                        GET /apis/metrics.k8s.io/v1beta1/namespaces/NS/pods/web
    kubectl top nodes                          GET /apis/metrics.k8s.io/v1beta1/nodes  (then the Nodes, for the %)

Usage as metrics-server writes it: CPU in nanocores ("12345678n"), memory in kibibytes ("10240Ki"); `window` is the
span the CPU rate was measured over, `timestamp` when. A pod appears once the kubelet has two samples of it.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

import aiohttp
from aiohttp import web

from api import errors
from api.errors import ApiError
from api.kubelet_client import KubeletClient
from api.registry import Resource, lookup

Obj = dict[str, Any]
GROUP_VERSION = "metrics.k8s.io/v1beta1"
SCRAPE_TIMEOUT = 3.0
Select = Callable[[Resource, list[Obj], Any], list[Obj]]  # the objects a list query selects


def cpu(nanocores: int) -> str:
    return f"{int(nanocores)}n"


def memory(size: int) -> str:
    return f"{int(size) // 1024}Ki"


def _window(summary: Obj) -> str:
    return f"{float(summary.get('window') or 0):g}s"


def _meta(obj: Obj) -> Obj:
    meta = obj["metadata"]
    out = {"name": meta["name"], "creationTimestamp": meta.get("creationTimestamp")}
    if meta.get("namespace"):
        out["namespace"] = meta["namespace"]
    if meta.get("labels"):
        out["labels"] = meta["labels"]
    return out


def node_metrics(node: Obj, summary: Obj) -> Obj:
    usage = summary["node"]
    return {"metadata": _meta(node), "timestamp": usage["cpu"]["time"], "window": _window(summary),
            "usage": {"cpu": cpu(usage["cpu"]["usageNanoCores"]), "memory": memory(usage["memory"]["workingSetBytes"])}}


def pod_metrics(pod: Obj, summary: Obj) -> Obj | None:
    """The PodMetrics of `pod` from its node's summary; None when the kubelet has no sample of it yet."""
    uid = pod["metadata"].get("uid")
    found = next((p for p in summary.get("pods") or [] if p["podRef"].get("uid") == uid), None)
    if found is None or not found.get("containers"):
        return None
    containers = [{"name": c["name"], "usage": {"cpu": cpu(c["cpu"]["usageNanoCores"]),
                                                "memory": memory(c["memory"]["workingSetBytes"])}}
                  for c in found["containers"]]
    return {"metadata": _meta(pod), "timestamp": found["containers"][0]["cpu"]["time"], "window": _window(summary),
            "containers": containers}


async def summaries(kubelets: KubeletClient, nodes: list[Obj]) -> dict[str, Obj]:
    """Node name -> its kubelet's summary, for the nodes that answered in time."""
    async def one(session: aiohttp.ClientSession, node: Obj) -> tuple[str, Obj | None]:
        name = node["metadata"]["name"]
        try:
            url = kubelets.url(node, "/stats/summary")
            async with session.get(url, params={"node": name}) as resp:
                return name, (await resp.json() if resp.status == 200 else None)
        except (ApiError, aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError):
            return name, None

    async with kubelets.session(total=SCRAPE_TIMEOUT) as session:
        found = await asyncio.gather(*(one(session, n) for n in nodes))
    return {name: summary for name, summary in found if summary is not None}


async def serve(request: web.Request, res: Resource, namespace: str | None, name: str | None, *, objects: Any,
                kubelets: KubeletClient, select: Select) -> web.Response:
    if request.method != "GET":
        raise ApiError(405, f"{res.plural}.metrics.k8s.io can only be read (get, list)")
    nodes_res = lookup("", "v1", "nodes")
    if res.kind == "NodeMetrics":
        nodes = [await objects.get(nodes_res, None, name)] if name else select(
            nodes_res, (await objects.list(nodes_res, None))[0], request.query)
        found = await summaries(kubelets, nodes)
        items = [node_metrics(n, found[n["metadata"]["name"]]) for n in nodes if n["metadata"]["name"] in found]
    else:
        pods_res = lookup("", "v1", "pods")
        pods = [await objects.get(pods_res, namespace, name)] if name else select(
            pods_res, (await objects.list(pods_res, namespace))[0], request.query)
        pods = [p for p in pods if (p.get("spec") or {}).get("nodeName")]
        wanted = {p["spec"]["nodeName"] for p in pods}
        nodes = [n for n in (await objects.list(nodes_res, None))[0] if n["metadata"]["name"] in wanted]
        found = await summaries(kubelets, nodes)
        items = [m for p in pods if (m := pod_metrics(p, found.get(p["spec"]["nodeName"], {}))) is not None]
    if name is not None:
        if not items:
            raise errors.not_found(res.plural, name, res.group)
        return web.json_response({"kind": res.kind, "apiVersion": GROUP_VERSION, **items[0]})
    return web.json_response({"kind": f"{res.kind}List", "apiVersion": GROUP_VERSION, "metadata": {},
                              "items": items})
