"""What a kubelet may do: Kubernetes' Node authorizer, for system:node:NAME in group system:nodes.

A node reads what every node needs (Nodes, Services, Endpoints, Pods), writes its own Node and its own Lease
in kube-node-lease, the status of the pods bound to it and their deletion once stopped, and Events. It may
read a Secret or ConfigMap, or ask a token for a service account, only for a pod bound to it that uses them.
So a node cannot read another node's Secrets, delete other Nodes, or list every Secret in the cluster.

A create names no object in its path: a node may ask to create a Node or a Lease, and api/node_restriction.py
(NodeRestriction) then checks that the object is its own.
"""
from __future__ import annotations

from typing import Any, Iterator

from api.errors import ApiError
from api.rbac import Attributes
from api.registry import lookup

PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
LEASE_NAMESPACE = "kube-node-lease"
READ = {"get", "list", "watch"}
WRITE_OWN = {"update", "patch"}
Obj = dict[str, Any]


def node_user(name: str) -> str:
    """The user a node's kubelet is."""
    return PREFIX + name


def node_of(user: str, groups: tuple[str, ...]) -> str | None:
    """The node a user is the kubelet of, or None."""
    if NODES_GROUP in groups and user.startswith(PREFIX):
        return user[len(PREFIX):]
    return None


async def decide(a: Attributes, objects) -> str | None:
    node = node_of(a.user, a.groups)
    if node is None or not a.is_resource:
        return None
    why = f"node {node}"
    if a.api_group == "" and a.resource == "nodes":
        if a.verb in READ or (a.verb == "create" and not a.subresource) or (a.name == node and a.verb in WRITE_OWN):
            return why
    elif a.api_group == "coordination.k8s.io" and a.resource == "leases" and a.namespace == LEASE_NAMESPACE:
        if a.verb == "create" or (a.name == node and a.verb in {"get"} | WRITE_OWN):
            return why
    elif a.api_group == "" and a.resource in ("services", "endpoints") and not a.subresource and a.verb in READ:
        return why
    elif a.api_group in ("", "events.k8s.io") and a.resource == "events" and a.verb in ("create", "update", "patch"):
        return why
    elif a.api_group == "" and a.resource == "pods":
        if not a.subresource and a.verb in READ:
            return why
        if (a.subresource == "status" and a.verb in WRITE_OWN) or (not a.subresource and a.verb == "delete"):
            pod = await _get(objects, "pods", a.namespace, a.name)
            if pod is not None and (pod.get("spec") or {}).get("nodeName") == node:
                return why
    elif a.api_group == "" and a.resource in ("secrets", "configmaps") and a.verb == "get" and not a.subresource:
        if any(a.name in set(_uses(pod, a.resource)) for pod in await _pods_on(objects, node, a.namespace)):
            return why
    elif a.api_group == "" and a.resource == "serviceaccounts" and a.subresource == "token" and a.verb == "create":
        if any(service_account(pod) == a.name for pod in await _pods_on(objects, node, a.namespace)):
            return why
    return None


async def _get(objects, plural: str, namespace: str, name: str) -> Obj | None:
    try:
        return await objects.get(lookup("", "v1", plural), namespace, name, local=True)
    except ApiError:
        return None


async def _pods_on(objects, node: str, namespace: str) -> list[Obj]:
    pods, _ = await objects.list(lookup("", "v1", "pods"), namespace, local=True)
    return [p for p in pods if (p.get("spec") or {}).get("nodeName") == node]


def service_account(pod: Obj) -> str:
    return (pod.get("spec") or {}).get("serviceAccountName") or "default"


def _uses(pod: Obj, plural: str) -> Iterator[str]:
    """The names of the Secrets (or ConfigMaps) a pod reads: volumes, projected sources, env and envFrom."""
    kind = "secret" if plural == "secrets" else "configMap"
    spec = pod.get("spec") or {}
    for volume in spec.get("volumes") or []:
        source = volume.get(kind) or {}
        yield source.get("secretName" if kind == "secret" else "name", "")
        for item in (volume.get("projected") or {}).get("sources") or []:
            yield (item.get(kind) or {}).get("name", "")
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for env in container.get("env") or []:
            yield ((env.get("valueFrom") or {}).get(f"{kind}KeyRef") or {}).get("name", "")
        for env_from in container.get("envFrom") or []:
            yield (env_from.get(f"{kind}Ref") or {}).get("name", "")
    if kind == "secret":
        for ref in spec.get("imagePullSecrets") or []:
            yield ref.get("name", "")
