"""The steps every write takes, in one place: create, update, patch, server-side apply and their dry runs all
come here, so a check added here holds for every one of them (as kube-apiserver's registry strategies do).

    decode (api/fields.py) and authorize (api/authorization.py)      in the HTTP layer, before
    new_object / changed_object: the object built from the request (api/objects.py), defaults (api/defaults.py),
                                 validation (api/validation.py), what a kubelet may write (api/node_restriction.py)
    create / store_update:       admission (the namespace exists and is not terminating; a pod's service account
                                 and its token volume, api/pod_service_account.py; a Service's ClusterIP and node
                                 ports, api/service_allocation.py), then the store (api/storage.py)
"""
from __future__ import annotations

from typing import Any

from api import defaults, deletion, errors, node_restriction, objects, pod_service_account, subresources, validation
from api.authentication import User
from api.errors import ApiError
from api.paths import Target
from api.registry import Resource, lookup
from api.service_allocation import ServiceAllocator
from api.storage import ObjectStore

Obj = dict[str, Any]


def check(res: Resource, obj: Obj, causes: list[tuple[str, str]]) -> None:
    """422 Invalid, one cause per field, if there are any."""
    if causes:
        raise errors.invalid(res.kind, obj["metadata"]["name"], causes, res.group)


class Admission:
    def __init__(self, objects_: ObjectStore, services: ServiceAllocator) -> None:
        self.objects = objects_
        self.services = services

    @staticmethod
    def new_object(res: Resource, body: Any, namespace: str | None, user: User | None = None) -> Obj:
        """The object a create by `user` (None: the server itself) stores: identity, defaults, valid (or 422), and
        the user's to write (a kubelet's, api/node_restriction.py)."""
        obj = objects.for_create(res, body, namespace)
        defaults.apply(res.kind, obj)
        if res.kind == "Job":
            defaults.job_selector(obj)
        check(res, obj, validation.check(res.kind, obj))
        node_restriction.admit(user, res, None, obj)
        return obj

    async def create(self, res: Resource, obj: Obj) -> Obj:
        """Admit and store a new object (from new_object)."""
        if res.namespaced:
            await self.require_namespace(obj["metadata"]["namespace"])
        if res.kind == "Pod":
            await pod_service_account.admit(self.objects, obj)
        if res.kind == "Service":
            return await self.services.create(res, obj)
        return await self.objects.create(res, obj)

    async def require_namespace(self, namespace: str) -> None:
        try:
            ns = await self.objects.get(lookup("", "v1", "namespaces"), None, namespace)
        except ApiError as exc:
            if exc.code == 404:
                raise ApiError(404, f'namespaces "{namespace}" not found',
                               details={"name": namespace, "kind": "namespaces"}) from None
            raise
        if deletion.terminating(ns):
            raise ApiError(403, f"unable to create new content in namespace {namespace} because it is being "
                                "terminated", reason="Forbidden", details={"name": namespace, "kind": "namespaces"})

    def changed_object(self, t: Target, old: Obj, body: Any, user: User | None = None) -> Obj:
        """The object an update of `t` (the object, its status, scale or finalize) by `user` stores: valid (or 422)
        and the user's to change."""
        if t.subresource == "scale":
            return self.changed_object(t.whole, old, subresources.with_replicas(old, body), user)
        if t.subresource == "finalize":  # a namespace's spec.finalizers, and nothing else
            spec = body.get("spec") if isinstance(body, dict) else None
            body = {**old, "spec": {**(old.get("spec") or {}), "finalizers": (spec or {}).get("finalizers") or []}}
            t = t.whole
        new = objects.for_update(t.res, old, body, t.subresource)
        defaults.apply(t.res.kind, new)
        check(t.res, new, validation.check_update(t.res.kind, old, new))
        node_restriction.admit(user, t.res, old, new)
        return new

    async def store_update(self, t: Target, new: Obj, expected: int) -> Obj:
        """Write an update (compare-and-swap on `expected`); one that removed the last finalizer of an object
        marked for deletion removes it."""
        saved = await self.objects.update(t.res, new, expected)
        if deletion.finished(t.res, saved):
            await self.objects.delete(t.res, t.namespace, t.name, int(saved["metadata"]["resourceVersion"]))
        return saved
