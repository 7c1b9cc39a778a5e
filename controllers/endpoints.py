"""The Endpoints controller: each Service with a selector gets an Endpoints of its name (endpoints_controller.go).

For every pod the selector picks that has an IP and is neither finished nor being deleted: an address (ip,
nodeName, targetRef to the pod; hostname when the pod's subdomain is the Service) among `addresses` when the pod
is Ready (or the Service publishes not-ready addresses), else among `notReadyAddresses`; the ports are the
Service's, each targetPort resolved for that pod (a name is looked up in its containers' ports; a pod without it
is left out of that port). Pods with the same resolved ports share a subset (Kubernetes' RepackSubsets), so pods
that number a named port differently land in different subsets.

A Service without a selector is left alone: its Endpoints are the user's. The Endpoints of a deleted Service is
deleted. An Endpoints is written only when what it says changed.
"""
from __future__ import annotations

import copy
from typing import Any

from api.client import ApiClientError, NotFound
from api.selectors import selector_matches
from controllers.base import Context, Controller
from controllers.informer import key_of
from controllers.objects import is_deleting, is_ready, is_terminal

Obj = dict[str, Any]

HEADLESS = "service.kubernetes.io/headless"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


# -- pure: a Service and its pods -> subsets -------------------------------------------------------------------

def selects(service: Obj, pod: Obj) -> bool:
    selector = (service.get("spec") or {}).get("selector") or {}
    return bool(selector) and selector_matches({"matchLabels": selector}, pod["metadata"].get("labels") or {})


def target_port(service_port: Obj, pod: Obj) -> int | None:
    """The port number a Service port reaches on this pod (FindPort): a number as is, a name from the containers'
    ports with that name and protocol; None when the pod has no such port."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return port.get("containerPort")
    return None


def address(pod: Obj, service: Obj) -> Obj:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    addr: Obj = {"ip": pod["status"]["podIP"]}
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        addr["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        addr["nodeName"] = spec["nodeName"]
    addr["targetRef"] = {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta.get("uid", "")}
    return addr


def in_endpoints(pod: Obj) -> bool:
    """ShouldPodBeInEndpoints: an IP, not finished, not being deleted."""
    return bool((pod.get("status") or {}).get("podIP")) and not is_terminal(pod) and not is_deleting(pod)


def endpoint_ports(service: Obj, pod: Obj) -> list[Obj]:
    ports = []
    for sp in (service.get("spec") or {}).get("ports") or []:
        number = target_port(sp, pod)
        if number is None:
            continue
        port: Obj = {"port": number, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("name"):
            port["name"] = sp["name"]
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        ports.append(port)
    return sorted(ports, key=lambda p: (p.get("name", ""), p["port"], p["protocol"]))


def subsets(service: Obj, pods: list[Obj]) -> list[Obj]:
    """The Endpoints subsets of a Service over the pods of its namespace, in a stable order."""
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    has_ports = bool((service.get("spec") or {}).get("ports"))
    groups: dict[tuple, tuple[list[Obj], list[Obj], list[Obj]]] = {}  # ports -> (ports, ready, not ready)
    for pod in pods:
        if not selects(service, pod) or not in_endpoints(pod):
            continue
        ports = endpoint_ports(service, pod)
        if has_ports and not ports:
            continue  # none of the Service's ports exists on this pod
        key = tuple((p.get("name", ""), p["port"], p["protocol"]) for p in ports)
        group = groups.setdefault(key, (ports, [], []))
        (group[1] if publish or is_ready(pod) else group[2]).append(address(pod, service))
    out = []
    for key in sorted(groups):
        ports, ready, not_ready = groups[key]
        subset: Obj = {}
        if ready:
            subset["addresses"] = sorted(ready, key=lambda a: (a["ip"], a["targetRef"]["uid"]))
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=lambda a: (a["ip"], a["targetRef"]["uid"]))
        if ports:
            subset["ports"] = ports
        out.append(subset)
    return out


def endpoints_labels(service: Obj) -> dict[str, str]:
    labels = dict(service["metadata"].get("labels") or {})
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS] = ""
    return labels


# -- the controller ------------------------------------------------------------------------------------------

class EndpointsController(Controller):
    name = "endpoints"
    component = "endpoint-controller"
    service_account = "endpoint-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.services = ctx.informers["services"]
        self.pods = ctx.informers["pods"]
        self.endpoints = ctx.informers["endpoints"]
        self.services.add_handler(lambda event, old, new: self.enqueue(new or old))  # type: ignore[arg-type]
        self.pods.add_handler(self.on_pod)
        self.endpoints.add_handler(self.on_endpoints)

    def on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """Wake the Services that select the pod now or did before."""
        pod = new or old
        assert pod is not None
        if old is not None and new is not None and _same_for_endpoints(old, new):
            return
        for service in self.services.list(pod["metadata"]["namespace"]):
            if any(p is not None and selects(service, p) for p in (old, new)):
                self.enqueue(service)

    def on_endpoints(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """An Endpoints changed or deleted by someone else is put back (if its Service has a selector)."""
        ep = new or old
        assert ep is not None
        if self.services.get(key_of(ep)) is not None:
            self.enqueue(ep)

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        service = self.services.get(key)
        if service is None:
            try:  # the Service is gone: so is its Endpoints
                await self.client.delete("endpoints", name, namespace)
            except NotFound:
                pass
            return
        if not (service.get("spec") or {}).get("selector") or is_deleting(service):
            return
        wanted = subsets(service, self.pods.list(namespace))
        labels = endpoints_labels(service)
        current = self.endpoints.get(key)
        if current is None:
            body = {"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": namespace, "labels": labels}, "subsets": wanted}
            try:
                await self.client.create("endpoints", body)
            except ApiClientError as exc:
                if exc.status == 403:  # the namespace is being deleted
                    return
                raise
            return
        if (current.get("subsets") or []) == wanted and (current["metadata"].get("labels") or {}) == labels:
            return
        ep = copy.deepcopy(current)
        ep["metadata"]["labels"] = labels
        ep["subsets"] = wanted
        await self.client.update("endpoints", ep)


def _same_for_endpoints(old: Obj, new: Obj) -> bool:
    """Nothing an Endpoints shows changed: labels, IP, readiness, phase, deletion, node, hostname."""
    def view(p: Obj) -> tuple:
        spec, status = p.get("spec") or {}, p.get("status") or {}
        return (p["metadata"].get("labels"), status.get("podIP"), is_ready(p), status.get("phase"),
                is_deleting(p), spec.get("nodeName"), spec.get("hostname"), spec.get("subdomain"))
    return view(old) == view(new)
