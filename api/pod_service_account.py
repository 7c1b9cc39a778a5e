"""The ServiceAccount admission plugin: every pod runs as a service account, `default` unless it names one, and
unless automountServiceAccountToken says false (the pod's, else its account's) it gets the projected volume
Kubernetes gives it, mounted read-only in every container at /var/run/secrets/kubernetes.io/serviceaccount:

    token      a token for the account, bound to the pod (the kubelet asks TokenRequest for it and renews it,
               node/service_account_tokens.py), for the API server's audience
    ca.crt     the cluster CA, from the ConfigMap kube-root-ca.crt (controllers/root_ca_publisher.py)
    namespace  the pod's namespace (downward API)

which is what an in-cluster client reads (the Python client's load_incluster_config). A container that already
mounts something at that path keeps it. The account need not exist yet: the kubelet waits for it (FailedMount), where
kube-apiserver refuses the pod; raftkube's clients create pods in a namespace the moment it exists, before the
service account controller has made its `default`.
"""
from __future__ import annotations

import secrets
import string
from typing import Any

from api.errors import ApiError
from api.registry import lookup
from api.storage import ObjectStore

Obj = dict[str, Any]
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
TOKEN_SECONDS = 3607  # Kubernetes' default for this volume: an hour, and 7 s to tell it from one a user chose
ROOT_CA = "kube-root-ca.crt"
_SUFFIX = string.ascii_lowercase + string.digits


def projected_volume(name: str) -> Obj:
    return {"name": name, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}


async def _automount(objects: ObjectStore, spec: Obj, namespace: str) -> bool:
    if isinstance(spec.get("automountServiceAccountToken"), bool):
        return spec["automountServiceAccountToken"]
    try:
        account = await objects.get(lookup("", "v1", "serviceaccounts"), namespace, spec["serviceAccountName"])
    except ApiError as exc:
        if exc.code != 404:
            raise
        return True
    return account.get("automountServiceAccountToken") is not False


async def admit(objects: ObjectStore, pod: Obj) -> None:
    """Give a new pod its service account and, unless it opts out, the volume that holds its token (in place)."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    spec["serviceAccountName"] = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccount"] = spec["serviceAccountName"]  # the deprecated twin Kubernetes still fills
    if not await _automount(objects, spec, pod["metadata"]["namespace"]):
        return
    volumes = spec.get("volumes") or []
    name = next((v["name"] for v in volumes if isinstance(v, dict) and str(v.get("name", "")).startswith(
        VOLUME_PREFIX)), None)
    mount = {"name": name or VOLUME_PREFIX + "".join(secrets.choice(_SUFFIX) for _ in range(5)), "readOnly": True,
             "mountPath": MOUNT_PATH}
    mounted = False
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        mounts = container.get("volumeMounts") or []
        if not any(isinstance(m, dict) and m.get("mountPath") == MOUNT_PATH for m in mounts):
            container["volumeMounts"] = [*mounts, dict(mount)]
            mounted = True
    if mounted and name is None:
        spec["volumes"] = [*volumes, projected_volume(mount["name"])]
