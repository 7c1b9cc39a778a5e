"""The root CA publisher: every namespace has a ConfigMap "kube-root-ca.crt" holding the cluster CA's certificate
(`ca.crt`), kept as the controller-manager knows it (Kubernetes' rootcacertpublisher). In-cluster clients read it
from their pod's projected service account volume to verify the API server. Off when the controller-manager was
given no CA (Options.root_ca empty)."""
from __future__ import annotations

from typing import Any

from api.client import NotFound
from controllers.base import Context, Controller
from controllers.objects import is_deleting

Obj = dict[str, Any]
NAME = "kube-root-ca.crt"
DESCRIPTION = "kubernetes.io/description"


class RootCAPublisher(Controller):
    name = "root-ca-cert-publisher"
    component = "root-ca-cert-publisher"
    service_account = "root-ca-cert-publisher"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.ca = ctx.options.root_ca
        self.namespaces = ctx.informers["namespaces"]
        self.configmaps = ctx.informers["configmaps"]
        if self.ca:
            self.namespaces.add_handler(lambda event, old, new: new is not None and self.queue.add(
                new["metadata"]["name"]))
            self.configmaps.add_handler(self.on_configmap)

    def on_configmap(self, event: str, old: Obj | None, new: Obj | None) -> None:
        cm = new or old
        if cm is not None and cm["metadata"]["name"] == NAME:
            self.queue.add(cm["metadata"]["namespace"])

    def wanted(self, namespace: str) -> Obj:
        return {"apiVersion": "v1", "kind": "ConfigMap", "data": {"ca.crt": self.ca},
                "metadata": {"name": NAME, "namespace": namespace, "annotations": {
                    DESCRIPTION: "Contains a CA bundle that can be used to verify the kube-apiserver when using "
                                 "internal endpoints such as the internal service IP or kubernetes.default.svc. "
                                 "No other usage is guaranteed across distributions of Kubernetes clusters."}}}

    async def sync(self, namespace: str) -> None:
        ns = self.namespaces.get(namespace)
        if ns is None or is_deleting(ns):
            return
        cm = self.configmaps.get(f"{namespace}/{NAME}")
        try:
            if cm is None:
                await self.client.create("configmaps", self.wanted(namespace), namespace)
            elif (cm.get("data") or {}).get("ca.crt") != self.ca:
                await self.client.update("configmaps", {**cm, "data": {"ca.crt": self.ca}})
        except NotFound:  # the namespace went meanwhile
            pass
