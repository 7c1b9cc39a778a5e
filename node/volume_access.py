"""Who may use a pod's volumes once its processes run as an unprivileged uid (node/isolation.py), as the kubelet's
volume ownership rules have it:

- an emptyDir is mode 0777: any uid of the pod writes there. With fsGroup its group is fsGroup and it is setgid,
  so the files made in it belong to that group too;
- with fsGroup, the files the kubelet writes (configMap, secret, downwardAPI, projected) belong to group fsGroup and
  are group-readable: a secret with defaultMode 0400 is then readable by the pod, as upstream, and by nobody else;
- a hostPath is the node's own directory and left as it is.
The kubelet's files are written by root; only they are walked. An emptyDir's content is the pod's, and may hold
anything, links included: only the emptyDir's own directory is changed.
"""
from __future__ import annotations

import os
import stat
from typing import Any

Obj = dict[str, Any]


def share(volumes_dir: str, pod: Obj, fs_group: int | None) -> None:
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if not isinstance(volume, dict) or not volume.get("name") or "hostPath" in volume:
            continue
        path = os.path.join(volumes_dir, volume["name"])
        if "emptyDir" in volume:
            if fs_group is not None:
                os.chown(path, -1, fs_group)
            os.chmod(path, 0o777 | (stat.S_ISGID if fs_group is not None else 0))
        elif fs_group is not None:
            _group_readable(path, fs_group)


def _group_readable(top: str, gid: int) -> None:
    for directory, _, files in os.walk(top):
        os.chown(directory, -1, gid, follow_symlinks=False)
        os.chmod(directory, stat.S_IMODE(os.lstat(directory).st_mode) | 0o050 | stat.S_ISGID)
        for name in files:
            path = os.path.join(directory, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chown(path, -1, gid, follow_symlinks=False)
                os.chmod(path, stat.S_IMODE(mode) | 0o040)
