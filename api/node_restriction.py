"""NodeRestriction: what a kubelet may write, checked on the object itself, after the Node authorizer
(api/node_authorizer.py) let the request through on its path alone.

A node (system:node:NAME in system:nodes) may create only its own Node and its own Lease in kube-node-lease; it may
not give its Node labels that would steer workloads to it (the node-restriction.kubernetes.io/ prefix, and
kubernetes.io/ or k8s.io/ labels other than those the kubelet sets itself) nor change its ownerReferences; and a
token it asks for must be bound to a pod that runs on it. As Kubernetes' NodeRestriction admission plugin.
"""
from __future__ import annotations

from typing import Any

from api.authentication import User
from api.errors import ApiError
from api.node_authorizer import LEASE_NAMESPACE, node_of, service_account
from api.registry import Resource

Obj = dict[str, Any]
# The labels a kubelet sets on its own Node (Kubernetes' kubeletapis.KubeletLabels and its allowed namespaces).
KUBELET_LABELS = {"kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os", "beta.kubernetes.io/arch",
                  "beta.kubernetes.io/os", "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
                  "failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
                  "topology.kubernetes.io/region", "topology.kubernetes.io/zone"}
KUBELET_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _in(domain: str, namespace: str) -> bool:
    return domain == namespace or domain.endswith("." + namespace)


def forbidden_label(key: str) -> bool:
    domain = key.rpartition("/")[0]
    if not domain:
        return False
    if _in(domain, "node-restriction.kubernetes.io"):
        return True
    if any(_in(domain, ns) for ns in KUBELET_NAMESPACES) or key in KUBELET_LABELS:
        return False
    return _in(domain, "kubernetes.io") or _in(domain, "k8s.io")


def _forbidden(plural: str, name: str, node: str, what: str) -> ApiError:
    """kube-apiserver's wording for an admission plugin's refusal."""
    return ApiError(403, f'{plural} "{name}" is forbidden: node "{node}" {what}', reason="Forbidden",
                    details={"name": name, "kind": plural})


def _changed_labels(old: Obj | None, new: Obj) -> set[str]:
    before = ((old or {}).get("metadata") or {}).get("labels") or {}
    after = new["metadata"].get("labels") or {}
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


def admit(user: User | None, res: Resource, old: Obj | None, new: Obj) -> None:
    """403 when a node writes what is not its own. `old` is None for a create; `user` None: the server itself."""
    node = node_of(user.name, user.groups) if user is not None else None
    if node is None:
        return
    name = str(new["metadata"].get("name"))
    if res.group == "" and res.kind == "Node":
        if name != node:
            raise _forbidden(res.plural, name, node, f'is not allowed to modify node "{name}"')
        labels = sorted(k for k in _changed_labels(old, new) if forbidden_label(k))
        if labels:
            raise _forbidden(res.plural, name, node,
                             f"is not allowed to set the following labels: {', '.join(labels)}")
        if old is not None and old["metadata"].get("ownerReferences") != new["metadata"].get("ownerReferences"):
            raise _forbidden(res.plural, name, node, "is not allowed to modify its own ownerReferences")
    elif res.kind == "Lease" and res.group == "coordination.k8s.io":
        if new["metadata"].get("namespace") != LEASE_NAMESPACE or name != node:
            raise _forbidden(res.plural, name, node, "can only access its own lease in the namespace kube-node-lease")


def admit_token(user: User, account: str, pod: Obj | None) -> None:
    """A node's TokenRequest must be bound to a pod that runs on it and uses the account."""
    node = node_of(user.name, user.groups)
    if node is None:
        return
    if pod is None:
        raise _forbidden("serviceaccounts", account, node, "may only request tokens bound to a pod "
                                                           "(spec.boundObjectRef)")
    if (pod.get("spec") or {}).get("nodeName") != node or service_account(pod) != account:
        raise _forbidden("serviceaccounts", account, node, "may only request tokens for pods that run on it with "
                                                           f"that service account, not pod \"{pod['metadata']['name']}\"")
