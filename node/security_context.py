"""As whom a container's processes run on a node that isolates pods (node/isolation.py): the pod's and the
container's securityContext, the container's winning field by field, as Kubernetes merges them.

    runAsUser           the uid; the node's --pod-uid (65534, nobody) when neither gives one. 0 is refused: a pod
                        never runs as root here (runAsNonRoot is therefore always met)
    runAsGroup          the gid; the node's --pod-gid (65534, nogroup) when neither gives one
    fsGroup             (pod only) an extra group of every process, and the group that owns the pod's volumes
                        (node/volume_access.py)
    supplementalGroups  (pod only) more groups
    capabilities.drop   ALL or NET_BIND_SERVICE takes away the one capability a container keeps (below)
One capability is kept, NET_BIND_SERVICE (as an ambient capability, so the command has it): a pod's server may
listen on port 80 as an image's does. Kubernetes' runtimes give a pod that (ip_unprivileged_port_start=0 in the
pod's own network namespace); pods here share the node's network, so the capability stands in for it. No other
capability is ever kept, whatever `capabilities.add` asks, and no process may gain one (no_new_privs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.runtime import ContainerError

Obj = dict[str, Any]
MAX_ID = 2**32 - 2  # (uid_t)-1 means "unchanged" to the kernel


CAP_NET_BIND_SERVICE = 10  # linux/capability.h


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    groups: tuple[int, ...]
    capabilities: tuple[int, ...] = ()  # kept, as ambient capabilities


def _number(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise ContainerError("CreateContainerConfigError", f"{name} must be a number from 0 to {MAX_ID}, not {value!r}")
    return value


def _id(context: Obj, field: str, where: str) -> int | None:
    value = context.get(field)
    return None if value is None else _number(value, f"{where}.{field}")


def _context(obj: Obj, where: str) -> Obj:
    context = obj.get("securityContext") or {}
    if not isinstance(context, dict):
        raise ContainerError("CreateContainerConfigError", f"{where} must be an object")
    return context


def fs_group(pod: Obj) -> int | None:
    return _id(_context(pod.get("spec") or {}, "spec.securityContext"), "fsGroup", "spec.securityContext")


def identity(pod: Obj, container: Obj, *, default_uid: int, default_gid: int) -> Identity:
    """The container's uid, gid and groups; a ContainerError names a field that cannot be honoured."""
    pod_ctx = _context(pod.get("spec") or {}, "spec.securityContext")
    ctx = _context(container, "securityContext")

    def pick(field: str) -> int | None:
        mine = _id(ctx, field, "securityContext")
        return mine if mine is not None else _id(pod_ctx, field, "spec.securityContext")

    uid, gid = pick("runAsUser"), pick("runAsGroup")
    if uid == 0:
        raise ContainerError("CreateContainerConfigError", "runAsUser 0: this node runs no container as root (its "
                                                           "pods run as unprivileged users)")
    supplemental = pod_ctx.get("supplementalGroups") or []
    if not isinstance(supplemental, list):
        raise ContainerError("CreateContainerConfigError", "spec.securityContext.supplementalGroups must be a list")
    groups = [_number(g, "spec.securityContext.supplementalGroups[]") for g in supplemental]
    extra = fs_group(pod)
    return Identity(uid=default_uid if uid is None else uid, gid=default_gid if gid is None else gid,
                    groups=tuple(dict.fromkeys(g for g in [extra, *groups] if g is not None)),
                    capabilities=_kept_capabilities(ctx))


def _kept_capabilities(ctx: Obj) -> tuple[int, ...]:
    capabilities = ctx.get("capabilities")
    drop = (capabilities.get("drop") if isinstance(capabilities, dict) else None) or []
    if not isinstance(drop, list):
        raise ContainerError("CreateContainerConfigError", "securityContext.capabilities.drop must be a list")
    dropped = {str(name).upper().removeprefix("CAP_") for name in drop}
    return () if dropped & {"ALL", "NET_BIND_SERVICE"} else (CAP_NET_BIND_SERVICE,)
