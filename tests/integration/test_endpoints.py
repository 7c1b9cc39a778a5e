"""The Endpoints controller on a real master (Kubernetes' documented Service/Endpoints behaviour): a Service with
a selector gets an Endpoints of its name listing its ready pods' IPs under addresses and the others under
notReadyAddresses, with named target ports resolved per pod (pods that number the port differently in separate
subsets); it follows pods becoming ready and going away, is deleted with its Service, and leaves the Endpoints of
a Service without a selector to its user. The test plays the kubelet (kube.set_pod_phase)."""
from __future__ import annotations

from api.client import ApiClient
from tests.integration.cluster import eventually
from tests.integration.kube import maybe_get, namespace, set_pod_phase


async def pod(api: ApiClient, ns: str, name: str, port: int, *, ready: bool, ip: str) -> dict:
    created = await api.create("pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx",
                                                    "ports": [{"name": "http", "containerPort": port}]}]}}, ns)
    return await phase(api, created, ready=ready, ip=ip)


async def phase(api: ApiClient, pod: dict, *, ready: bool, ip: str) -> dict:
    return await set_pod_phase(api, pod, "Running", ready=ready, ip=ip, retries=10)


async def subsets(api: ApiClient, ns: str, name: str = "web") -> list[dict] | None:
    endpoints = await maybe_get(api, "endpoints", name, ns)
    return None if endpoints is None else endpoints.get("subsets") or []


def view(subsets: list[dict]) -> list[tuple]:
    """(port, ready IPs, not-ready IPs) per subset."""
    return [(tuple(p["port"] for p in s.get("ports") or []), [a["ip"] for a in s.get("addresses") or []],
             [a["ip"] for a in s.get("notReadyAddresses") or []]) for s in subsets]


async def test_endpoints_follow_ready_pods_and_resolve_named_ports(cp):
    async with namespace(cp, "ep") as (api, ns):
        await api.create("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                      "spec": {"selector": {"app": "web"},
                                               "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}, ns)
        await eventually(lambda: _equals(subsets(api, ns), []), timeout=30, what="an empty Endpoints")
        a = await pod(api, ns, "a", 8080, ready=True, ip="10.1.0.1")
        b = await pod(api, ns, "b", 8080, ready=False, ip="10.1.0.2")
        await pod(api, ns, "c", 9090, ready=True, ip="10.1.0.3")
        await eventually(lambda: _equals(_view(subsets(api, ns)), [((8080,), ["10.1.0.1"], ["10.1.0.2"]),
                                                                   ((9090,), ["10.1.0.3"], [])]),
                         timeout=30, what="two subsets by port number")
        ep = await api.get("endpoints", "web", ns)
        address = ep["subsets"][0]["addresses"][0]
        assert address["targetRef"]["name"] == "a" and address["nodeName"] == "n1"
        assert ep["subsets"][0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]

        await phase(api, b, ready=True, ip="10.1.0.2")
        await api.delete("pods", "a", ns, grace_period_seconds=0)
        await eventually(lambda: _equals(_view(subsets(api, ns)), [((8080,), ["10.1.0.2"], []),
                                                                   ((9090,), ["10.1.0.3"], [])]),
                         timeout=30, what="b ready, a gone")
        assert a["metadata"]["name"] == "a"
        version = (await api.get("endpoints", "web", ns))["metadata"]["resourceVersion"]
        await api.patch("pods", "c", {"metadata": {"annotations": {"note": "no change for endpoints"}}}, ns)
        await api.get("pods", "c", ns)
        assert (await api.get("endpoints", "web", ns))["metadata"]["resourceVersion"] == version  # no write storm

        await api.delete("services", "web", ns)
        await eventually(lambda: _equals(subsets(api, ns), None), timeout=30, what="the Endpoints deleted")


async def test_a_service_without_selector_keeps_the_users_endpoints(cp):
    async with namespace(cp, "ep") as (api, ns):
        await api.create("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
                                      "spec": {"ports": [{"port": 5432}]}}, ns)
        mine = [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432, "protocol": "TCP"}]}]
        await api.create("endpoints", {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext"},
                                       "subsets": mine}, ns)
        await api.create("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "marker"},
                                      "spec": {"selector": {"app": "none"}, "ports": [{"port": 80}]}}, ns)
        await eventually(lambda: _equals(subsets(api, ns, "marker"), []), timeout=30, what="the controller at work")
        assert await subsets(api, ns, "ext") == mine


async def _view(subsets_) -> list[tuple] | None:
    found = await subsets_
    return None if found is None else view(found)


async def _equals(value, wanted) -> bool:
    return (await value) == wanted
