"""The API objects a pod's containers and volumes refer to: ConfigMaps, Secrets, and (for the Service
environment variables) the Services of its namespace and the `kubernetes` Service. Fetched through the API, once per
container start; the service account tokens of its volumes are the pod worker's to add
(node/service_account_tokens.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.client import ApiClient, NotFound

Obj = dict[str, Any]


@dataclass
class PodConfig:
    configmaps: dict[str, Obj | None] = field(default_factory=dict)  # name -> object, None when missing
    secrets: dict[str, Obj | None] = field(default_factory=dict)
    services: list[Obj] = field(default_factory=list)
    kubernetes: Obj | None = None  # the API servers' Service, default/kubernetes (KUBERNETES_SERVICE_HOST, ...)
    tokens: dict[tuple[str, int], str] = field(default_factory=dict)  # (audience, expirationSeconds) -> token


def _spec_containers(spec: Obj) -> list[Obj]:
    return [c for c in (spec.get("initContainers") or []) + (spec.get("containers") or []) if isinstance(c, dict)]


def references(pod: Obj) -> tuple[set[str], set[str]]:
    """(ConfigMap names, Secret names) the pod's env, envFrom and volumes name."""
    spec = pod.get("spec") or {}
    configmaps: set[str] = set()
    secrets: set[str] = set()
    for c in _spec_containers(spec):
        for var in c.get("env") or []:
            source = (var or {}).get("valueFrom") or {}
            if (source.get("configMapKeyRef") or {}).get("name"):
                configmaps.add(source["configMapKeyRef"]["name"])
            if (source.get("secretKeyRef") or {}).get("name"):
                secrets.add(source["secretKeyRef"]["name"])
        for source in c.get("envFrom") or []:
            if ((source or {}).get("configMapRef") or {}).get("name"):
                configmaps.add(source["configMapRef"]["name"])
            if ((source or {}).get("secretRef") or {}).get("name"):
                secrets.add(source["secretRef"]["name"])
    for volume in spec.get("volumes") or []:
        if ((volume or {}).get("configMap") or {}).get("name"):
            configmaps.add(volume["configMap"]["name"])
        if ((volume or {}).get("secret") or {}).get("secretName"):
            secrets.add(volume["secret"]["secretName"])
        for source in ((volume or {}).get("projected") or {}).get("sources") or []:
            if ((source or {}).get("configMap") or {}).get("name"):
                configmaps.add(source["configMap"]["name"])
            if ((source or {}).get("secret") or {}).get("name"):
                secrets.add(source["secret"]["name"])
    return configmaps, secrets


async def fetch(client: ApiClient, pod: Obj) -> PodConfig:
    namespace = pod["metadata"]["namespace"]
    configmaps, secrets = references(pod)
    config = PodConfig()
    for kind, names, into in (("configmaps", configmaps, config.configmaps), ("secrets", secrets, config.secrets)):
        for name in sorted(names):
            try:
                into[name] = await client.get(kind, name, namespace)
            except NotFound:
                into[name] = None
    if (pod.get("spec") or {}).get("enableServiceLinks", True) is not False:
        config.services, _ = await client.list("services", namespace)
    try:
        config.kubernetes = await client.get("services", "kubernetes", "default")
    except NotFound:
        pass
    return config
