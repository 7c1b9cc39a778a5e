"""The service account controller: every namespace that is not being deleted has a ServiceAccount named
"default" (Kubernetes' serviceaccounts_controller.go); it comes back if deleted. Pods that name no account run as
it, and clients such as the Python client's tests wait for it before they create pods."""
from __future__ import annotations

from typing import Any

from api.client import Conflict, NotFound
from controllers.base import Context, Controller
from controllers.objects import is_deleting

Obj = dict[str, Any]
DEFAULT = "default"


class ServiceAccountsController(Controller):
    name = "serviceaccount"
    component = "serviceaccount-controller"
    service_account = "service-account-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.namespaces = ctx.informers["namespaces"]
        self.accounts = ctx.informers["serviceaccounts"]
        self.namespaces.add_handler(lambda event, old, new: new is not None and self.queue.add(
            new["metadata"]["name"]))
        self.accounts.add_handler(self.on_account)

    def on_account(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "delete" and old is not None and old["metadata"]["name"] == DEFAULT:
            self.queue.add(old["metadata"]["namespace"])

    async def sync(self, namespace: str) -> None:
        ns = self.namespaces.get(namespace)
        if ns is None or is_deleting(ns) or self.accounts.get(f"{namespace}/{DEFAULT}") is not None:
            return
        try:
            await self.client.create("serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                         "metadata": {"name": DEFAULT, "namespace": namespace}},
                                     namespace)
        except (Conflict, NotFound):  # made by another sync meanwhile, or the namespace went
            pass
