"""`GET pods/NAME/log`: the API server asks the pod's kubelet and streams its answer back (as kube-apiserver does).

    kubectl logs web-1 -c app -f --tail 10
      -> GET /api/v1/namespaces/default/pods/web-1/log?container=app&follow=true&tailLines=10
      -> the pod's node: status.addresses InternalIP and status.daemonEndpoints.kubeletEndpoint.Port
      -> GET http://IP:PORT/containerLogs/default/web-1/app?follow=true&tailLines=10
         Authorization: Bearer <the system:nodes token from this master's --token-file>
The kubelet listens on the node's own (loopback) address and accepts only the node token.
"""
from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from api.errors import ApiError, bad_request
from api.query import flag
from api.registry import lookup

Obj = dict[str, Any]
PASSED = ("follow", "tailLines", "previous", "limitBytes", "timestamps")
BOOLEANS = frozenset({"follow", "previous", "timestamps"})
NODE_USER = "system:nodes"


def pick_container(pod: Obj, asked: str | None) -> str:
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])]
    name = pod["metadata"]["name"]
    if not asked:
        main = [c.get("name") for c in spec.get("containers") or []]
        if len(main) != 1:
            raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(main)}]")
        return main[0]
    if asked not in names:
        raise bad_request(f"container {asked} is not valid for pod {name}")
    return asked


def check_started(pod: Obj, container: str) -> None:
    """A container that never ran has no logs: say what it waits for, in kube-apiserver's words."""
    status = pod.get("status") or {}
    for s in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if s.get("name") == container and "waiting" in (s.get("state") or {}) and not s.get("lastState") \
                and not s.get("restartCount"):
            reason = (s["state"]["waiting"] or {}).get("reason", "ContainerCreating")
            raise bad_request(f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: '
                              f"{reason}")


def kubelet_address(node: Obj) -> tuple[str, int]:
    status = node.get("status") or {}
    ip = next((a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), None)
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not ip or not isinstance(port, int) or port <= 0:
        raise ApiError(503, f"node {node['metadata']['name']} reports no kubelet endpoint (InternalIP and "
                            "daemonEndpoints.kubeletEndpoint.Port); is its `raftkube node` running?")
    return ip, port


def node_token(tokens: Any) -> str | None:
    """The system:nodes token of this master's --token-file (api/authentication.py), which the kubelets also hold."""
    users = tokens.users() if tokens is not None else {}
    return next((token for token, user in users.items() if user.name == NODE_USER), None)


async def serve(request: web.Request, objects: Any, namespace: str, name: str, tokens: Any) -> web.StreamResponse:
    pod = await objects.get(lookup("", "v1", "pods"), namespace, name)
    container = pick_container(pod, request.query.get("container"))
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: the pod is not scheduled '
                          "to a node yet")
    check_started(pod, container)
    ip, port = kubelet_address(await objects.get(lookup("", "v1", "nodes"), None, node_name))
    params = {k: request.query[k] for k in PASSED if k in request.query}
    for option in BOOLEANS & params.keys():  # checked here, and passed on in one spelling the kubelet reads
        params[option] = "true" if flag(request.query, option) else "false"
    token = node_token(tokens)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"http://{ip}:{port}/containerLogs/{namespace}/{name}/{container}"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            upstream = await session.get(url, params=params, headers=headers)
        except (aiohttp.ClientError, OSError) as exc:
            raise ApiError(503, f"the kubelet of node {node_name} at {ip}:{port} cannot be reached ({exc}); is its "
                                "`raftkube node` running?") from None
        async with upstream:
            if upstream.status != 200:
                text = (await upstream.text()).strip()
                code = upstream.status if upstream.status in (400, 404) else 502
                raise ApiError(code, f"node {node_name}: {text or upstream.reason}")
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            except (ConnectionError, aiohttp.ClientError):
                pass  # either side went away: the stream ends
            return resp
