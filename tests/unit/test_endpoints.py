"""Endpoints from a Service and pods: ready and not-ready addresses, named target ports, subsets by port numbers."""
from __future__ import annotations

from controllers.endpoints import subsets, target_port


def service(ports: list[dict], **spec) -> dict:
    return {"metadata": {"name": "web", "namespace": "ns"}, "spec": {"selector": {"app": "web"}, "ports": ports,
                                                                      **spec}}


def pod(name: str, ip: str | None, *, ready: bool = True, http: int = 8080, phase: str = "Running",
        labels: dict | None = None, deleting: bool = False, node: str = "n1") -> dict:
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": labels or {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": meta, "spec": {"nodeName": node, "containers": [
        {"name": "c", "ports": [{"name": "http", "containerPort": http}]}]}, "status": status}


def ips(subset: dict, field: str = "addresses") -> list[str]:
    return [a["ip"] for a in subset.get(field) or []]


def test_ready_pods_are_addresses_the_others_not_ready_addresses():
    svc = service([{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}])
    pods = [pod("b", "10.0.0.2"), pod("a", "10.0.0.1"), pod("c", "10.0.0.3", ready=False),
            pod("d", None), pod("e", "10.0.0.5", phase="Succeeded"), pod("f", "10.0.0.6", deleting=True),
            pod("g", "10.0.0.7", labels={"app": "other"})]
    [subset] = subsets(svc, pods)
    assert ips(subset) == ["10.0.0.1", "10.0.0.2"] and ips(subset, "notReadyAddresses") == ["10.0.0.3"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert subset["addresses"][0] == {"ip": "10.0.0.1", "nodeName": "n1", "targetRef": {
        "kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"}}


def test_named_target_ports_resolve_per_pod_into_separate_subsets():
    svc = service([{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}])
    pods = [pod("a", "10.0.0.1", http=8080), pod("b", "10.0.0.2", http=9090), pod("c", "10.0.0.3", http=8080)]
    out = subsets(svc, pods)
    assert [(s["ports"][0]["port"], ips(s)) for s in out] == [(8080, ["10.0.0.1", "10.0.0.3"]), (9090, ["10.0.0.2"])]


def test_a_pod_without_the_named_port_is_left_out():
    svc = service([{"port": 80, "targetPort": "metrics", "protocol": "TCP"}])
    assert target_port({"port": 80, "targetPort": "metrics"}, pod("a", "10.0.0.1")) is None
    assert subsets(svc, [pod("a", "10.0.0.1")]) == []


def test_publish_not_ready_addresses_and_no_pods():
    svc = service([{"port": 80, "targetPort": 8080, "protocol": "TCP"}], publishNotReadyAddresses=True)
    [subset] = subsets(svc, [pod("a", "10.0.0.1", ready=False)])
    assert ips(subset) == ["10.0.0.1"] and "notReadyAddresses" not in subset
    assert subsets(svc, []) == []


def test_a_service_without_selector_selects_nothing():
    svc = service([{"port": 80, "targetPort": 8080, "protocol": "TCP"}])
    svc["spec"]["selector"] = {}
    assert subsets(svc, [pod("a", "10.0.0.1")]) == []
