"""What a kubelet may do: Kubernetes' Node authorizer and NodeRestriction admission, for system:node:NAME.

A node reads what every node needs (Nodes, Services, Endpoints, Pods), writes its own Node and its own Lease
in kube-node-lease, the status of the pods bound to it and their deletion once stopped, and Events. It may
read a Secret or ConfigMap, or ask a token for a service account, only for a pod bound to it that uses them.
So a node cannot read another node's Secrets, delete other Nodes, or list every Secret in the cluster.
"""
from __future__ import annotations

from typing import Any, Iterator

from api.errors import ApiError
from api.rbac import Attributes
from api.registry import lookup

PREFIX = "system:node:"
READ = {"get", "list", "watch"}
Obj = dict[str, Any]


def node_name(a: Attributes) -> str | None:
    if "system:nodes" in a.groups and a.user.startswith(PREFIX):
        return a.user[len(PREFIX):]
    return None


async def decide(a: Attributes, objects) -> str | None:
    node = node_name(a)
    if node is None or not a.is_resource:
        return None
    why = f"node {node}"
    if a.api_group == "" and a.resource in ("nodes",):
        if a.verb in READ or (a.name == node and a.verb in ("create", "update", "patch")):
            return why
    elif a.api_group == "coordination.k8s.io" and a.resource == "leases":
        if a.namespace == "kube-node-lease" and a.name == node and a.verb in ("get", "create", "update", "patch"):
            return why
    elif a.api_group == "" and a.resource in ("services", "endpoints") and not a.subresource and a.verb in READ:
        return why
    elif a.api_group in ("", "events.k8s.io") and a.resource == "events" and a.verb in ("create", "update", "patch"):
        return why
    elif a.api_group == "" and a.resource == "pods":
        if not a.subresource and a.verb in READ:
            return why
        if (a.subresource == "status" and a.verb in ("update", "patch")) or (not a.subresource and a.verb == "delete"):
            pod = await _get(objects, "pods", a.namespace, a.name)
            if pod is not None and (pod.get("spec") or {}).get("nodeName") == node:
                return why
    elif a.api_group == "" and a.resource in ("secrets", "configmaps") and a.verb == "get" and not a.subresource:
        if any(a.name in set(_uses(pod, a.resource)) for pod in await _pods_on(objects, node, a.namespace)):
            return why
    elif a.api_group == "" and a.resource == "serviceaccounts" and a.subresource == "token" and a.verb == "create":
        if any(_service_account(pod) == a.name for pod in await _pods_on(objects, node, a.namespace)):
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


def _service_account(pod: Obj) -> str:
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
