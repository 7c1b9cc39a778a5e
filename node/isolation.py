"""Where a container's processes run and as whom: the two ways a process-runtime node places them. The choice is
written, at each container start, to `launch.json` in the container's directory; node/enter.py carries it out for
the container and for every `kubectl exec` and exec probe after it.

- Isolated (the node runs as root): each container in a mount namespace of its own, whose root holds the node's
  system directories read-only and the pod's volumes at their mountPaths, and nothing else (node/pod_root.py); its
  processes run as the pod's unprivileged uid and gid (node/security_context.py) with no capability but
  NET_BIND_SERVICE, from the container's PATH (the usual default of an image). exec joins that namespace as the
  same uid. The pod's volumes are made usable by that uid (node/volume_access.py).
- Direct (any other user, who cannot make mounts or change uid): the process runs as the node's user, from its
  container's directory in the state dir where each volumeMount is a symlink (node/volumes.py link), on the node's
  PATH. runAsUser and fsGroup are not honoured; the node says so once, at start (raftkube/node.py).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Protocol

from node import images, security_context, volume_access, volumes
from node.runtime import ContainerError
from node.sandbox import Sandbox

Obj = dict[str, Any]
SPEC = "launch.json"
CONTAINER_PATH = images.IMAGE_PATH


class Placement(Protocol):
    isolated: bool

    def path(self) -> str:
        """The PATH a container's command is looked up on."""

    def container_root(self, sandbox: Sandbox, name: str) -> str:
        """Where the container's volumeMounts are ($RAFTKUBE_ROOT)."""

    def share(self, sandbox: Sandbox, pod: Obj) -> None:
        """Make the pod's volumes usable by its processes, once written."""

    def spec(self, sandbox: Sandbox, pod: Obj, container: Obj, mounts: list[volumes.Mount]) -> Obj:
        """What node/enter.py needs to start the container; raises ContainerError."""

    def namespace(self, shim: int) -> int | None:
        """An open descriptor of the mount namespace exec joins: the container's whose log shim is `shim`."""


def spec_path(sandbox: Sandbox, name: str) -> str:
    return os.path.join(sandbox.container_dir(name), SPEC)


def write_spec(sandbox: Sandbox, name: str, spec: Obj) -> str:
    path = spec_path(sandbox, name)
    with open(path + ".tmp", "w") as f:
        json.dump(spec, f)
    os.replace(path + ".tmp", path)
    return path


class Direct:
    isolated = False

    def path(self) -> str:
        return os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")

    def container_root(self, sandbox: Sandbox, name: str) -> str:
        return sandbox.root_dir(name)

    def share(self, sandbox: Sandbox, pod: Obj) -> None:
        """Every process is the node's user, who wrote the volumes."""

    def spec(self, sandbox: Sandbox, pod: Obj, container: Obj, mounts: list[volumes.Mount]) -> Obj:
        return {"workingDir": volumes.link(sandbox, container, mounts), "sandbox": None}

    def namespace(self, shim: int) -> int | None:
        return None


class Isolated:
    isolated = True

    def __init__(self, *, uid: int, gid: int) -> None:
        """`uid` and `gid`: a container's when its securityContext names none (raftkube node --pod-uid, --pod-gid)."""
        self.uid, self.gid = uid, gid

    def path(self) -> str:
        return CONTAINER_PATH

    def container_root(self, sandbox: Sandbox, name: str) -> str:
        return "/"

    def share(self, sandbox: Sandbox, pod: Obj) -> None:
        volume_access.share(os.path.join(sandbox.dir, "volumes"), pod, security_context.fs_group(pod))

    def spec(self, sandbox: Sandbox, pod: Obj, container: Obj, mounts: list[volumes.Mount]) -> Obj:
        who = security_context.identity(pod, container, default_uid=self.uid, default_gid=self.gid)
        root = sandbox.root_dir(container["name"])
        os.makedirs(root, exist_ok=True)
        return {"workingDir": os.path.normpath(os.path.join("/", str(container.get("workingDir") or ""))),
                "sandbox": {"root": root, "mounts": [dataclasses.asdict(m) for m in mounts], "uid": who.uid,
                            "gid": who.gid, "groups": list(who.groups),
                            "capabilities": list(who.capabilities)}}

    def namespace(self, shim: int) -> int:
        try:
            with open(f"/proc/{shim}/task/{shim}/children") as f:
                container = int(f.read().split()[0])
            return os.open(f"/proc/{container}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        except (OSError, IndexError, ValueError):
            raise ContainerError("ExecFailed", "the container's process has ended") from None
