"""The namespace controller: a namespace marked for deletion is emptied, then finalized (namespace_controller.go).

`kubectl delete namespace x` only marks it (deletionTimestamp, phase Terminating; api/deletion.py), and the API
refuses new content in it. One sync of a Terminating namespace:
  1. delete every namespaced resource in it (one deletecollection per kind, as Kubernetes' deleter);
  2. list what is left; pods bound to a node that is gone or not Ready are deleted with grace 0, because no
     kubelet will confirm their graceful deletion (what Kubernetes' pod garbage collector does for them);
     everything else is waited for (kubelets confirm their pods, finalizers are removed by their owners);
  3. once nothing is left, PUT namespaces/NAME/finalize without the "kubernetes" finalizer: the API removes it.
While content remains the namespace's conditions say so (NamespaceContentRemaining) and the sync comes back.
"""
from __future__ import annotations

import copy
from typing import Any

from api.client import ApiClientError, NotFound, path, resource
from api.registry import RESOURCES
from controllers.base import Context, Controller
from controllers.objects import condition, is_deleting, set_condition

Obj = dict[str, Any]

FINALIZER = "kubernetes"
NAMESPACED = [r.plural for r in RESOURCES if r.namespaced and "deletecollection" in r.verbs]
RECHECK = 1.0  # seconds between looks at a namespace still being emptied


def node_confirms(node: Obj | None) -> bool:
    """Can this node's kubelet confirm a pod's graceful deletion? Only if the Node exists and is Ready."""
    ready = condition(node, "Ready") if node is not None else None
    return bool(ready and ready.get("status") == "True")


def remaining_message(left: dict[str, int]) -> str:
    """Kubernetes' NamespaceContentRemaining message: "Some resources are remaining: pods. has 2 resource instances"."""
    return "Some resources are remaining: " + ", ".join(
        f"{plural}. has {count} resource instances" for plural, count in sorted(left.items()))


class NamespaceController(Controller):
    name = "namespace"
    component = "namespace-controller"
    service_account = "namespace-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.namespaces = ctx.informers["namespaces"]
        self.nodes = ctx.informers["nodes"]
        self.namespaces.add_handler(self.on_namespace)

    def on_namespace(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if new is not None and is_deleting(new):
            self.enqueue(new)

    async def sync(self, key: str) -> None:
        cached = self.namespaces.get(key)
        if cached is None or not is_deleting(cached) or FINALIZER not in (cached.get("spec") or {}).get(
                "finalizers", []):
            return
        ns = copy.deepcopy(cached)
        left = await self.delete_content(key)
        if left:
            status = ns.setdefault("status", {})
            if set_condition(status, "NamespaceContentRemaining", "True", "SomeResourcesRemain",
                             remaining_message(left)):
                for c in status["conditions"]:
                    c.pop("lastUpdateTime", None)
                try:
                    await self.client.update_status("namespaces", ns)
                except ApiClientError:
                    pass  # a condition is only news; the namespace is what matters
            self.queue.add_after(key, RECHECK)
            return
        ns["spec"]["finalizers"] = [f for f in ns["spec"].get("finalizers") or [] if f != FINALIZER]
        try:
            await self.client.request("PUT", path(resource("namespaces"), None, key, "finalize"), body=ns)
        except NotFound:
            return
        self.log.info("namespace %s is empty: finalized", key)

    async def delete_content(self, namespace: str) -> dict[str, int]:
        """Delete everything in the namespace; what is still there, by plural."""
        left: dict[str, int] = {}
        for plural in NAMESPACED:
            res = resource(plural)
            items, _ = await self.client.list(plural, namespace)
            if not items:
                continue
            if any(not is_deleting(o) for o in items):
                await self.client.request("DELETE", path(res, namespace),
                                          body={"kind": "DeleteOptions", "apiVersion": "v1",
                                                "propagationPolicy": "Background"})
                items, _ = await self.client.list(plural, namespace)
            if plural == "pods":
                for pod in items:
                    if not node_confirms(self.nodes.get(pod["spec"].get("nodeName") or "")):
                        await self.force_delete(pod)
                items, _ = await self.client.list(plural, namespace)
            if items:
                left[plural] = len(items)
        return left

    async def force_delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete("pods", meta["name"], meta["namespace"], grace_period_seconds=0, uid=meta["uid"])
        except NotFound:
            return
        except ApiClientError as exc:
            if exc.status != 409:
                raise
            return
        self.log.info("force-deleted pod %s/%s: node %s cannot confirm", meta["namespace"], meta["name"],
                      pod["spec"].get("nodeName"))
