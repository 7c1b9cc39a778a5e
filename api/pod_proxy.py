"""A pod's subresources that the kubelet serves: pods/log, pods/exec, pods/attach, pods/portforward.

The API server checks what it can (the pod exists and has that container, it has not completed, its node is known),
then hands the request to the pod's kubelet (api/kubelet_client.py) and carries the answer back, as kube-apiserver
does:

    kubectl logs web -f --timestamps    GET pods/web/log?follow=true&timestamps=true  -> GET /containerLogs/NS/web/C?...
    kubectl exec web -- ls              GET pods/web/exec?command=ls&...   (WebSocket, v5.channel.k8s.io)
                                          -> WebSocket to /exec/NS/web/C?command=ls&..., same subprotocol
    kubectl attach, kubectl cp          the same, /attach (cp is tar over exec)
    kubectl port-forward web 8080:80    GET pods/web/portforward  (WebSocket, SPDY/3.1+portforward.k8s.io)
                                          -> WebSocket to /portForward/NS/web
    the Python client's portforward()   GET pods/web/portforward?ports=80  (WebSocket, v4.channel.k8s.io)

A WebSocket is relayed message by message, both ways, until either side closes; the kubelet answers the protocol
(the subprotocols asked for go to it as they came). When the kubelet refuses the upgrade (the container is not
running, say), its sentence is the 4xx the client gets: the request is asked again plainly, with the same query and
subprotocols, to hear it.
kubectl 1.32 tries the WebSocket first and falls back to SPDY (a POST with `Upgrade: SPDY/3.1`) when that fails;
such a request is asked of the kubelet as a plain one, so the answer, and kubectl's message, is the same error
(or, when nothing is wrong, that these are served over WebSocket only).
"""
from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import WSMsgType, web

from api.errors import ApiError, bad_request
from api.kubelet_client import KubeletClient
from api.query import flag
from api.registry import lookup

Obj = dict[str, Any]
LOG_OPTIONS = ("follow", "tailLines", "previous", "limitBytes", "timestamps", "sinceSeconds", "sinceTime")
BOOLEANS = frozenset({"follow", "previous", "timestamps"})
KUBELET_PATHS = {"exec": "exec", "attach": "attach", "portforward": "portForward"}
MAX_MESSAGE = 32 << 20  # upstream's bound (x/net/websocket's), as the kubelet's
CLOSE_TIMEOUT = 5.0
ENDS = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)  # what ends a WebSocket's reading
UNSENDABLE = (1004, 1005, 1006, 1015)  # reserved: RFC 6455 7.4.1 lets no close frame carry them


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


async def _pod_and_node(objects: Any, namespace: str, name: str, waiting: str) -> tuple[Obj, Obj]:
    pod = await objects.get(lookup("", "v1", "pods"), namespace, name)
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise bad_request(f'{waiting} in pod "{name}": the pod is not scheduled to a node yet')
    return pod, await objects.get(lookup("", "v1", "nodes"), None, node_name)


async def logs(request: web.Request, objects: Any, kubelets: KubeletClient, namespace: str,
               name: str) -> web.StreamResponse:
    container = request.query.get("container")
    pod, node = await _pod_and_node(objects, namespace, name, f'container "{container or ""}" is waiting to start')
    container = pick_container(pod, container)
    check_started(pod, container)
    params = {k: request.query[k] for k in LOG_OPTIONS if k in request.query}
    for option in BOOLEANS & params.keys():  # checked here, and passed on in one spelling the kubelet reads
        params[option] = "true" if flag(request.query, option) else "false"
    url = kubelets.url(node, f"/containerLogs/{quote(namespace)}/{quote(name)}/{quote(container)}")
    async with kubelets.session() as session:
        try:
            upstream = await session.get(url, params=params)
        except (aiohttp.ClientError, OSError) as exc:
            raise kubelets.unreachable(node, exc) from None
        async with upstream:
            if upstream.status != 200:
                raise kubelets.refused(node, upstream.status, await upstream.text())
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            except (ConnectionError, aiohttp.ClientError):
                pass  # either side went away: the stream ends
            return resp


async def stream(request: web.Request, objects: Any, kubelets: KubeletClient, namespace: str, name: str,
                 subresource: str) -> web.StreamResponse:
    """pods/exec, pods/attach, pods/portforward."""
    pod, node = await _pod_and_node(objects, namespace, name, "the pod cannot be reached")
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise bad_request(f"cannot {'forward ports to' if subresource == 'portforward' else subresource + ' into'} "
                          f"a container in a completed pod; current phase is {phase}")
    path = f"/{KUBELET_PATHS[subresource]}/{quote(namespace)}/{quote(name)}"
    if subresource != "portforward":
        path += f"/{quote(pick_container(pod, request.query.get('container')))}"
    query = [(k, v) for k, v in request.query.items() if k != "container"]
    url = kubelets.url(node, path)
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise await _verdict(kubelets, node, url, query, [])
    asked = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    async with kubelets.session() as session:
        try:
            upstream = await session.ws_connect(url, params=query, protocols=asked, max_msg_size=MAX_MESSAGE)
        except aiohttp.WSServerHandshakeError:
            raise await _verdict(kubelets, node, url, query, asked) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise kubelets.unreachable(node, exc) from None
        async with upstream:
            client = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (),
                                           max_msg_size=MAX_MESSAGE)
            await client.prepare(request)
            await _relay(client, upstream)
            return client


async def _verdict(kubelets: KubeletClient, node: Obj, url: str, query: list[tuple[str, str]],
                   asked: list[str]) -> ApiError:
    """The kubelet's answer to the request asked plainly (no upgrade): its reason to refuse it."""
    headers = {"Sec-WebSocket-Protocol": ", ".join(asked)} if asked else {}
    async with kubelets.session(total=10) as session:
        try:
            async with session.get(url, params=query, headers=headers) as resp:
                return kubelets.refused(node, resp.status, await resp.text())
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            return kubelets.unreachable(node, exc)


def passed_on(msg: aiohttp.WSMessage) -> tuple[int, str]:
    """The close code and reason to give the other side once `msg` ended one side's reading: those of its close frame
    (the kubelet says why it ended a port-forward so), as sent, not the socket's close_code, which aiohttp makes 1006
    when its reply to that frame cannot be written (a kubelet closes its end as soon as it has sent its close). A side
    gone without a close frame, or a code no frame may carry (1005, 1006, 1015), is 1001, going away."""
    code = msg.data if msg.type == WSMsgType.CLOSE and isinstance(msg.data, int) else None
    if code is None or not 1000 <= code < 5000 or code in UNSENDABLE:
        return aiohttp.WSCloseCode.GOING_AWAY, ""
    return code, msg.extra or ""


async def _relay(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Messages both ways until one side closes; then the other is closed with the same code and reason (a close while
    the other direction still reads is how aiohttp ends that read: no task is cancelled in the middle of a close)."""
    async def pipe(source: Any, sink: Any) -> tuple[int, str]:
        """Until the source closes: what to close the sink with (passed_on)."""
        while (msg := await source.receive()).type not in ENDS:
            if msg.type == WSMsgType.BINARY:
                await sink.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await sink.send_str(msg.data)
        return passed_on(msg)

    to_kubelet, to_client = asyncio.create_task(pipe(client, upstream)), asyncio.create_task(pipe(upstream, client))
    try:
        done, _ = await asyncio.wait((to_kubelet, to_client), return_when=asyncio.FIRST_COMPLETED)
        first = done.pop()
        other = upstream if first is to_kubelet else client
        code, reason = (aiohttp.WSCloseCode.GOING_AWAY, "") if first.exception() else first.result()
        await other.close(code=code, message=reason.encode())
        await asyncio.wait((to_kubelet, to_client), timeout=CLOSE_TIMEOUT)
    finally:
        for task in (to_kubelet, to_client):
            task.cancel()
        await asyncio.gather(to_kubelet, to_client, return_exceptions=True)
