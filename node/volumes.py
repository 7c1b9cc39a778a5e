"""Volumes as files in the pod's sandbox, and what each volumeMount makes of them in a container.

Every volume but hostPath is the directory `volumes/<name>` of the pod, written when the pod starts, and a volume
that holds a service account token again when the token is renewed (node/service_account_tokens.py); other later
changes to a ConfigMap do not reach a running pod. Supported: emptyDir, configMap, secret, downwardAPI, projected
(of those three and serviceAccountToken) and hostPath (only under the node's --allowed-host-paths,
node/host_paths.py); `items`, `defaultMode`, `mode`, `optional`, `subPath`, `readOnly`. `mounts()` says, per
volumeMount, which directory of the node appears where; how it appears depends on the node (node/isolation.py):
- as root, each is bind-mounted at its mountPath in the container's own root (node/pod_root.py), read-only when
  readOnly and always for configMap, secret, downwardAPI and projected volumes, as the kubelet does (a renewed
  token replaces its file in the volume's directory, so the container sees it);
- without root there are no mounts: `link()` makes the mountPath `/etc/config` the symlink `$RAFTKUBE_ROOT/etc/config`
  to the volume. The process starts in $RAFTKUBE_ROOT, so the relative path `etc/config/...` works too.
"""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any, Callable

from node import env as envs
from node.pod_config import PodConfig
from node.runtime import ContainerError
from node.sandbox import Sandbox
from node.service_account_tokens import key_of

Obj = dict[str, Any]
Files = dict[str, tuple[bytes, int]]  # relative path -> (content, mode)
WRITABLE = ("emptyDir", "hostPath")  # the other kinds are the kubelet's files, read-only in a container


@dataclass(frozen=True)
class Mount:
    """One volumeMount: `sub_path` inside the node's directory `base` (the volume's; "/" for a hostPath, whose
    resolved path is then all in `sub_path`) appears at `target`, an absolute path in the container."""
    base: str
    sub_path: str
    target: str
    read_only: bool

    @property
    def source(self) -> str:
        return os.path.join(self.base, self.sub_path)


def _mode(value: Any, default: int) -> int:
    return value if isinstance(value, int) and 0 <= value <= 0o777 else default


def _keyed(obj: Obj, items: list[Obj] | None, mode: int, secret: bool) -> Files:
    data: dict[str, bytes] = {}
    for key, value in (obj.get("data") or {}).items():
        data[key] = base64.b64decode(value) if secret else str(value).encode()
    for key, value in (obj.get("binaryData") or {}).items():
        data[key] = base64.b64decode(value)
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    files: Files = {}
    for item in items:
        key = item.get("key")
        if key not in data:
            raise ContainerError("FailedMount", f"couldn't find key {key} in {'Secret' if secret else 'ConfigMap'} "
                                                f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}")
        files[str(item.get("path") or key)] = (data[key], _mode(item.get("mode"), mode))
    return files


def _source(kind: str, ref: Obj, config: PodConfig, volume: str, mode: int) -> Files:
    secret = kind == "secret"
    name = ref.get("secretName" if secret and "secretName" in ref else "name")
    obj = (config.secrets if secret else config.configmaps).get(name)
    if obj is None:
        if ref.get("optional"):
            return {}
        raise ContainerError("FailedMount", f'MountVolume.SetUp failed for volume "{volume}" : {kind} "{name}" '
                                            "not found")
    return _keyed(obj, ref.get("items"), _mode(ref.get("defaultMode"), mode), secret)


def _downward(pod: Obj, items: list[Obj], mode: int, pod_ip: str) -> Files:
    files: Files = {}
    for item in items or []:
        ref = item.get("fieldRef") or {}
        if not ref:
            continue  # resourceFieldRef: not modelled
        value = envs.field_value(pod, str(ref.get("fieldPath")), pod_ip=pod_ip, host_ip="")
        files[str(item.get("path"))] = (value.encode(), _mode(item.get("mode"), mode))
    return files


def _token(source: Obj, config: PodConfig, volume: str, mode: int) -> Files:
    """A projected `serviceAccountToken`: the token the kubelet asked for it (node/service_account_tokens.py)."""
    token = config.tokens.get(key_of(source))
    if token is None:
        raise ContainerError("FailedMount", f'MountVolume.SetUp failed for volume "{volume}" : no service account '
                                            "token was asked for it")
    return {str(source.get("path") or "token"): (token.encode(), mode)}


def volume_files(pod: Obj, volume: Obj, config: PodConfig, pod_ip: str) -> Files | None:
    """The files of one volume; None for a volume that is a directory of its own (emptyDir, hostPath)."""
    name = volume.get("name", "")
    mode = 0o644
    if "configMap" in volume:
        return _source("configmap", volume["configMap"] or {}, config, name, mode)
    if "secret" in volume:
        return _source("secret", volume["secret"] or {}, config, name, mode)
    if "downwardAPI" in volume:
        spec = volume["downwardAPI"] or {}
        return _downward(pod, spec.get("items") or [], _mode(spec.get("defaultMode"), mode), pod_ip)
    if "projected" in volume:
        spec = volume["projected"] or {}
        mode = _mode(spec.get("defaultMode"), mode)
        files: Files = {}
        for source in spec.get("sources") or []:
            for kind in ("configMap", "secret"):
                if source.get(kind):
                    files.update(_source(kind.lower(), source[kind], config, name, mode))
            if source.get("downwardAPI"):
                files.update(_downward(pod, source["downwardAPI"].get("items") or [], mode, pod_ip))
            if source.get("serviceAccountToken"):
                files.update(_token(source["serviceAccountToken"], config, name, mode))
        return files
    return None


def _safe(base: str, relative: str) -> str:
    """A path inside `base`; '..' that would leave it is refused (a pod cannot write outside its sandbox)."""
    path = os.path.normpath(os.path.join(base, relative.lstrip("/")))
    if path != base and not path.startswith(base.rstrip(os.sep) + os.sep):
        raise ContainerError("FailedMount", f"the path {relative!r} leaves the volume")
    return path


def materialize(sandbox: Sandbox, pod: Obj, config: PodConfig, host_path: Callable[[str], str]) -> None:
    """Write every volume of the pod under sandbox/volumes (an emptyDir keeps what it holds); `host_path` resolves a
    hostPath's path, or refuses it with a ContainerError."""
    root = os.path.join(sandbox.dir, "volumes")
    for volume in _volumes(pod).values():
        if "hostPath" in volume:
            host_path(str((volume["hostPath"] or {}).get("path") or ""))
            continue
        target = _safe(root, volume["name"])
        files = volume_files(pod, volume, config, sandbox.ip)
        os.makedirs(target, exist_ok=True)
        for relative, (content, mode) in (files or {}).items():
            path = _safe(target, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path + ".tmp", "wb") as f:
                f.write(content)
            os.chmod(path + ".tmp", mode)
            os.replace(path + ".tmp", path)


def _volumes(pod: Obj) -> dict[str, Obj]:
    return {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or [] if isinstance(v, dict) and v.get("name")}


def mounts(sandbox: Sandbox, pod: Obj, container: Obj, host_path: Callable[[str], str]) -> list[Mount]:
    """The container's volumeMounts, checked: the volume exists, subPath stays inside it, mountPath is not /."""
    volumes = _volumes(pod)
    found = []
    for m in container.get("volumeMounts") or []:
        if not isinstance(m, dict) or not m.get("name") or not m.get("mountPath"):
            continue
        volume = volumes.get(m["name"])
        if volume is None:
            raise ContainerError("CreateContainerConfigError", f"volumeMount {m['name']}: the pod has no volume of "
                                                               "that name")
        target = _safe("/", str(m["mountPath"]))
        if target == "/":
            raise ContainerError("CreateContainerError", f"volumeMount {m['name']}: mountPath / is not supported")
        host = "hostPath" in volume
        directory = host_path(str((volume["hostPath"] or {}).get("path") or "")) if host else \
            _safe(os.path.join(sandbox.dir, "volumes"), m["name"])
        source = _safe(directory, str(m.get("subPath") or ""))
        base = "/" if host else directory
        read_only = bool(m.get("readOnly")) or not any(kind in volume for kind in WRITABLE)
        found.append(Mount(base, os.path.relpath(source, base), target, read_only))
    return found


def link(sandbox: Sandbox, container: Obj, found: list[Mount]) -> str:
    """The container's root with a symlink per mount (no mounts without root); answers its working directory."""
    root = sandbox.root_dir(container["name"])
    os.makedirs(root, exist_ok=True)
    for m in found:
        path = _safe(root, m.target)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.islink(path):
            os.remove(path)
        if not os.path.lexists(path):
            os.symlink(os.path.relpath(m.source, os.path.dirname(path)), path)
    return working_dir(sandbox, container)


def working_dir(sandbox: Sandbox, container: Obj) -> str:
    """The container's workingDir inside its root (the root itself when none is given), made if missing."""
    workdir = _safe(sandbox.root_dir(container["name"]), str(container.get("workingDir") or ""))
    os.makedirs(workdir, exist_ok=True)
    return workdir
