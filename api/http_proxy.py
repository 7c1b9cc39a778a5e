"""pods/proxy and services/proxy: an HTTP request relayed to a pod's port, as kube-apiserver relays it.

    kubectl proxy --port 8001 &
    curl localhost:8001/api/v1/namespaces/default/pods/web-1:8080/proxy/healthz
    kubectl get --raw /api/v1/namespaces/default/services/web:http/proxy/

The name in the path is `NAME`, `NAME:PORT` or `SCHEME:NAME:PORT` (SCHEME http or https; https is not verified,
as upstream). A pod's port is a number, by default its first container port (else 80). A service's port is one
of its ports' name or number (none: its only unnamed port); the request goes to a ready endpoint of that port,
picked at random, at the endpoint's target port.

The master dials the pod's IP itself, as kube-apiserver does (the compose cluster's masters have no route to the
pods' network, so there it answers 503 once the connection fails). That IP must be inside the pod range of the pod's node (its
spec.podCIDR), which keeps a master's own ports on 127.0.0.1 out of reach. The caller's credentials are not
passed on (Authorization and Impersonate-* headers are dropped), and WebSocket upgrades are not relayed.
"""
from __future__ import annotations

import ipaddress
import random
from typing import Any, Mapping

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from api.errors import ApiError, bad_request
from api.paths import Target
from api.registry import lookup

Obj = dict[str, Any]
CONNECT_TIMEOUT = 10.0
# Headers not copied across: the hop-by-hop ones, and those each side sets for its own connection.
NOT_COPIED = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}
NOT_PASSED_ON = NOT_COPIED | {"authorization"}  # ... and, to the pod, the caller's credentials
PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
SERVICES = lookup("", "v1", "services")
ENDPOINTS = lookup("", "v1", "endpoints")


def split_scheme_name_port(text: str) -> tuple[str, str, str] | None:
    """`NAME`, `NAME:PORT` or `SCHEME:NAME:PORT` -> (scheme, name, port); None when it is none of those."""
    parts = text.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, (name, port) = "", parts
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        return None
    if not name or scheme not in ("", "http", "https"):
        return None
    return scheme or "http", name, port


async def serve(request: web.Request, t: Target, objects: Any) -> web.StreamResponse:
    tail = _tail(request, t)
    query = request.rel_url.raw_query_string
    if tail == "" and not request.path.endswith("/"):  # relative links in the page resolve under the proxy path
        raise web.HTTPMovedPermanently(URL(request.rel_url.raw_path + "/" + (f"?{query}" if query else ""),
                                           encoded=True))
    if request.headers.get("Upgrade"):
        raise bad_request(f"{t.res.plural}/proxy does not relay {request.headers['Upgrade']} upgrades")
    kind = "pod" if t.res is PODS else "service"
    split = split_scheme_name_port(t.name or "")
    if split is None:
        raise bad_request(f'invalid {kind} request "{t.name}"')
    scheme, name, port = split
    if t.res is PODS:
        host, port = await _pod_address(objects, t.namespace, name, port)
    else:
        host, port = await _service_address(objects, t.namespace, name, port)
    url = URL(f"{scheme}://{host}:{port}/{tail}" + (f"?{query}" if query else ""), encoded=True)
    return await _relay(request, url, kind, name)


def _tail(request: web.Request, t: Target) -> str:
    """What follows `.../NAME/proxy/` in the path, as it was sent (still percent-encoded)."""
    raw = request.rel_url.raw_path
    after_name = raw.index(f"/{t.res.plural}/") + len(t.res.plural) + 2
    end = raw.index("/proxy", after_name) + len("/proxy")
    return raw[end + 1:]


async def _pod_address(objects: Any, namespace: str | None, name: str, port: str) -> tuple[str, str]:
    pod = await objects.get(PODS, namespace, name)
    if not port:
        ports = [p for c in (pod.get("spec") or {}).get("containers") or [] for p in c.get("ports") or []]
        port = str(ports[0].get("containerPort")) if ports else "80"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise bad_request(f'invalid pod request "{name}:{port}": a pod\'s port is a number')
    return await _checked_ip(objects, pod), port


async def _checked_ip(objects: Any, pod: Obj) -> str:
    """The pod's IP, once it is known to be inside its node's pod range."""
    name = pod["metadata"]["name"]
    ip = (pod.get("status") or {}).get("podIP")
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not ip or not node_name:
        raise bad_request(f'address not allowed: pod "{name}" has no IP yet (it is not running)')
    node = await objects.get(NODES, None, node_name)
    cidr = (node.get("spec") or {}).get("podCIDR")
    try:
        inside = cidr is not None and ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        inside = False
    if not inside:
        where = f"outside the pod range {cidr}" if cidr else "and no pod range (spec.podCIDR)"
        raise bad_request(f'address not allowed: pod "{name}" has IP {ip}, {where} of its node {node_name}')
    return ip


async def _service_address(objects: Any, namespace: str | None, name: str, port: str) -> tuple[str, str]:
    service = await objects.get(SERVICES, namespace, name)
    ports = (service.get("spec") or {}).get("ports") or []
    if port.isdigit():
        named = next((p.get("name", "") for p in ports if str(p.get("port")) == port), None)
        if named is None:
            raise ApiError(503, f'no service port {port} found for service "{name}"')
        port = named
    endpoints = await objects.get(ENDPOINTS, namespace, name)
    subsets = [s for s in endpoints.get("subsets") or [] if s.get("addresses")]
    random.shuffle(subsets)
    for subset in subsets:
        target = next((p.get("port") for p in subset.get("ports") or [] if p.get("name", "") == port), None)
        if target is None:
            continue
        for address in random.sample(subset["addresses"], len(subset["addresses"])):
            ref = address.get("targetRef") or {}
            if ref.get("kind") != "Pod":
                continue
            try:
                pod = await objects.get(PODS, ref.get("namespace") or namespace, ref.get("name", ""))
                if (pod.get("status") or {}).get("podIP") == address.get("ip"):
                    return await _checked_ip(objects, pod), str(target)
            except ApiError:
                continue  # gone, or not addressable: the next one
    raise ApiError(503, f'no endpoints available for service "{name}"')


def forwarded_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """The request's headers the pod gets: not the hop-by-hop ones, and not the caller's credentials."""
    return CIMultiDict((k, v) for k, v in headers.items()
                       if k.lower() not in NOT_PASSED_ON and not k.lower().startswith("impersonate-"))


async def _relay(request: web.Request, url: URL, kind: str, name: str) -> web.StreamResponse:
    headers = forwarded_headers(request.headers)
    body = request.content.iter_any() if request.body_exists else None
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        try:
            upstream = await session.request(request.method, url, headers=headers,
                                             data=body, allow_redirects=False, ssl=False)
        except (aiohttp.ClientError, OSError) as exc:
            raise ApiError(503, f'error trying to reach {kind} "{name}" at {url.human_repr()}: {exc}') from None
        async with upstream:
            resp = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=CIMultiDict(
                (k, v) for k, v in upstream.headers.items() if k.lower() not in NOT_COPIED))
            resp.content_length = upstream.content_length
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            except (ConnectionError, aiohttp.ClientError):
                pass  # either side went away: the response ends there
            return resp
