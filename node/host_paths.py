"""Which of the node's own paths a pod may have as a hostPath volume: those under `raftkube node --allowed-host-paths`
(none by default), as PodSecurity's policies and the old PodSecurityPolicy's allowedHostPaths restrict them upstream.

A path is resolved first (symlinks followed, `..` gone), then compared component by component: `/srv/data` allows
`/srv/data` and `/srv/data/x`, never `/srv/database`, nor `/srv/data/link` when the link leads out. The resolved path
is what gets mounted, walked again without following any symlink (node/pod_root.py), so a link made after the check
leads nowhere.
"""
from __future__ import annotations

import os

from node.runtime import ContainerError


class HostPaths:
    def __init__(self, prefixes: list[str]) -> None:
        """`prefixes`: absolute paths (a relative one is a ValueError, for the command line to report)."""
        for prefix in prefixes:
            if not os.path.isabs(prefix):
                raise ValueError(f"--allowed-host-paths: {prefix!r} is not an absolute path")
        self.prefixes = [os.path.realpath(p) for p in prefixes]

    def describe(self) -> str:
        return ", ".join(self.prefixes) if self.prefixes else "none"

    def resolve(self, path: str) -> str:
        """The real path of hostPath `path`, when it is allowed; else a ContainerError that says what is."""
        if not os.path.isabs(path):
            raise ContainerError("FailedMount", f"hostPath {path!r} is not an absolute path")
        real = os.path.realpath(path)
        if not any(real == p or real.startswith(p.rstrip(os.sep) + os.sep) for p in self.prefixes):
            shown = path if real == path else f"{path} (that is {real})"
            raise ContainerError("FailedMount", f"hostPath {shown} is not allowed on this node: it allows hostPath "
                                                f"volumes under {self.describe()} (raftkube node --allowed-host-paths)")
        return real
