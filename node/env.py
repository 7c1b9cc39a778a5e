"""A container's environment, as Kubernetes builds it (pure functions over the pod and the objects it names).

In order, later entries winning: the `kubernetes` Service's variables (KUBERNETES_SERVICE_HOST,
KUBERNETES_SERVICE_PORT, ..., where an in-cluster client finds the API), the Service variables of the pod's
namespace (NAME_SERVICE_HOST, NAME_SERVICE_PORT and the docker-link NAME_PORT_* family, unless enableServiceLinks is
false), envFrom (ConfigMaps and Secrets, with an optional prefix), then env (values with $(VAR) references expanded,
valueFrom configMapKeyRef, secretKeyRef, fieldRef and resourceFieldRef). raftkube adds POD_IP and
HOSTNAME (the pod's name), as the pod sandbox gives them, and RAFTKUBE_ROOT (where volumes are mounted).
"""
from __future__ import annotations

import base64
import re
from typing import Any

from node import images
from node.pod_config import PodConfig
from node.runtime import ContainerError

Obj = dict[str, Any]
_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")
_LABEL_PATH = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def expand(text: str, env: dict[str, str]) -> str:
    """$(VAR) becomes VAR's value when VAR is defined (else it stays as written); $$ is a literal $."""
    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _REF.sub(one, text)


def service_env(services: list[Obj]) -> dict[str, str]:
    """What the kubelet injects for each Service with a ClusterIP in the pod's namespace."""
    env: dict[str, str] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict) and p.get("port")]
        if not ip or ip == "None" or not ports:
            continue
        name = svc["metadata"]["name"].upper().replace("-", "_")
        env[f"{name}_SERVICE_HOST"] = ip
        env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                env[f"{name}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
        proto = (ports[0].get("protocol") or "TCP").lower()
        env[f"{name}_PORT"] = f"{proto}://{ip}:{ports[0]['port']}"
        for p in ports:
            proto = p.get("protocol") or "TCP"
            base = f"{name}_PORT_{p['port']}_{proto}"
            env.update({base: f"{proto.lower()}://{ip}:{p['port']}", f"{base}_PROTO": proto.lower(),
                        f"{base}_PORT": str(p["port"]), f"{base}_ADDR": ip})
    return env


def field_value(pod: Obj, path: str, *, pod_ip: str, host_ip: str) -> str:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    simple = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
              "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
              "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
              "status.hostIP": host_ip, "status.hostIPs": host_ip, "status.podIP": pod_ip, "status.podIPs": pod_ip}
    if path in simple:
        return str(simple[path] or "")
    m = _LABEL_PATH.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    raise ContainerError("CreateContainerConfigError", f"unsupported fieldRef fieldPath {path!r}")


def _data(obj: Obj, secret: bool) -> dict[str, str]:
    if secret:
        out = {}
        for key, value in (obj.get("data") or {}).items():
            try:
                out[key] = base64.b64decode(value).decode("utf-8", "replace")
            except (ValueError, TypeError):
                out[key] = ""
        return out
    return {k: str(v) for k, v in (obj.get("data") or {}).items()}


def _key_ref(ref: Obj, objects: dict[str, Obj | None], kind: str, secret: bool) -> str | None:
    name, key, optional = ref.get("name"), ref.get("key"), bool(ref.get("optional"))
    obj = objects.get(name)
    if obj is None:
        if optional:
            return None
        raise ContainerError("CreateContainerConfigError", f'{kind} "{name}" not found')
    data = _data(obj, secret)
    if key not in data:
        if optional:
            return None
        raise ContainerError("CreateContainerConfigError", f"couldn't find key {key} in {kind} "
                                                           f"{obj['metadata'].get('namespace')}/{name}")
    return data[key]


def resource_value(container: Obj, ref: Obj, node_allocatable: dict[str, str]) -> str:
    """limits.cpu and friends: the container's value, else the node's allocatable (Kubernetes' rule)."""
    resource = ref.get("resource") or ""
    kind, _, name = resource.partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    return str(value or node_allocatable.get(name, "0"))


def container_env(pod: Obj, container: Obj, config: PodConfig, *, pod_ip: str, host_ip: str,
                  node_allocatable: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of `container`; ContainerError names what is missing (the container then waits)."""
    env: dict[str, str] = service_env([config.kubernetes]) if config.kubernetes else {}  # always, as the kubelet
    if (pod.get("spec") or {}).get("enableServiceLinks", True) is not False:
        env.update(service_env(config.services))
    env.update({"POD_IP": pod_ip, "HOSTNAME": pod["metadata"]["name"]})
    for source in container.get("envFrom") or []:
        prefix = str((source or {}).get("prefix") or "")
        for field, objects, kind, secret in (("configMapRef", config.configmaps, "configmap", False),
                                             ("secretRef", config.secrets, "secret", True)):
            ref = (source or {}).get(field)
            if not ref:
                continue
            obj = objects.get(ref.get("name"))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ContainerError("CreateContainerConfigError", f'{kind} "{ref.get("name")}" not found')
            env.update({prefix + k: v for k, v in _data(obj, secret).items()})
    for var in container.get("env") or []:
        if not isinstance(var, dict) or not var.get("name"):
            continue
        source = var.get("valueFrom")
        if not source:
            env[var["name"]] = expand(str(var.get("value") or ""), env)
            continue
        value: str | None
        if source.get("configMapKeyRef"):
            value = _key_ref(source["configMapKeyRef"], config.configmaps, "configmap", False)
        elif source.get("secretKeyRef"):
            value = _key_ref(source["secretKeyRef"], config.secrets, "secret", True)
        elif source.get("fieldRef"):
            value = field_value(pod, str(source["fieldRef"].get("fieldPath")), pod_ip=pod_ip, host_ip=host_ip)
        elif source.get("resourceFieldRef"):
            value = resource_value(container, source["resourceFieldRef"], node_allocatable or {})
        else:
            raise ContainerError("CreateContainerConfigError", f"env {var['name']}: valueFrom names no source")
        if value is not None:
            env[var["name"]] = value
    return env


def command_line(container: Obj, env: dict[str, str]) -> list[str]:
    """command + args with $(VAR) expanded. No image is pulled: without a command, args are the command line,
    and a container with neither runs its image's stand-in (node/images.py: a web server for nginx, else an idle
    `sleep infinity`) so that image-only pods still run."""
    for field in ("command", "args"):
        if not isinstance(container.get(field) or [], list):
            raise ContainerError("CreateContainerError", f"{field} must be a list of strings, not "
                                                         f"{type(container[field]).__name__}")
    command = [expand(str(c), env) for c in container.get("command") or []]
    args = [expand(str(a), env) for a in container.get("args") or []]
    return images.provided(container, command + args) if command or args else images.stand_in(container)
