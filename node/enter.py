"""The first code a container's process (or a `kubectl exec`'s, or an exec probe's) runs: it puts itself where the
pod's processes belong, then becomes the command (node/launch.py makes its command line).

    python3 -E -s -S node/enter.py --spec DIR/launch.json --report-fd N [--join FD] -- ARGV...

The spec (node/isolation.py writes it when the container starts) holds the working directory and, on a node that
isolates its pods, the sandbox: the container's root directory, its mounts and its uid, gid and groups.
- With a sandbox and no --join (a container starting; its log shim runs this as the container's command): a mount
  namespace of its own, where the container's root is made and entered (node/pod_root.py).
- With --join FD (an open /proc/PID/ns/mnt of the running container's process): that namespace.
- Then, with a sandbox: no capability left but those the spec keeps (NET_BIND_SERVICE, ambient, unless the container
  drops it: node/security_context.py), no_new_privs (setuid programs grant nothing),
  the pod's groups, gid and uid. Its parent-death signal (the shim's SIGKILL), which a change of uid clears, is set
  again.
- The working directory, and exec of ARGV looked up on the container's PATH.
Any failure on the way is written to descriptor N and the process exits 127; a successful exec closes N (it is
close-on-exec), and that end of file tells the kubelet the command runs. Standard library only, as the log shim:
it starts in milliseconds and needs nothing of the kubelet's virtualenv.
"""
from __future__ import annotations

import ctypes
import json
import os
import sys
from typing import Any, NoReturn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from node import linux, pod_root  # noqa: E402 - runs as a script, its package put on the path above

FAILED = 127


def drop_privileges(uid: int, gid: int, groups: list[int], last_cap: int, keep: list[int]) -> None:
    """Become uid/gid/groups with only the capabilities `keep`, as ambient ones (the command it execs has them)."""
    death = ctypes.c_int(0)
    linux.prctl(linux.PR_GET_PDEATHSIG, ctypes.addressof(death))
    parent = os.getppid()
    for cap in range(last_cap + 1):
        if cap not in keep:
            linux.prctl(linux.PR_CAPBSET_DROP, cap)
    linux.prctl(linux.PR_SET_KEEPCAPS, 1 if keep else 0)  # else the permitted set goes with uid 0
    os.setgroups(groups)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    linux.set_capabilities(keep)  # every other one gone from the permitted and effective sets too
    for cap in keep:
        linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, cap)
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    if death.value:
        linux.prctl(linux.PR_SET_PDEATHSIG, death.value)
        if os.getppid() != parent:  # the parent died before the signal was set again
            os._exit(FAILED)


def enter(spec: dict[str, Any], join: int | None) -> None:
    sandbox = spec.get("sandbox")
    if sandbox is not None:
        last_cap = linux.last_capability()  # read from the node's /proc, before this one changes
        if join is None:
            linux.unshare(linux.CLONE_NEWNS)
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)  # nothing made here reaches the node
            pod_root.build(sandbox["root"], sandbox["mounts"], spec["workingDir"], sandbox["uid"], sandbox["gid"])
        else:
            linux.setns(join, linux.CLONE_NEWNS)
        drop_privileges(sandbox["uid"], sandbox["gid"], sandbox["groups"], last_cap, sandbox.get("capabilities", []))
    elif join is not None:
        raise ValueError("--join: this container has no sandbox to join")
    os.chdir(spec["workingDir"])


def fail(report: int, message: str) -> NoReturn:
    os.write(report, message.encode("utf-8", "replace")[:4096])
    os._exit(FAILED)


def main(args: list[str]) -> None:
    cut = args.index("--")
    options = dict(zip(args[:cut:2], args[1:cut:2]))
    report = int(options["--report-fd"])
    os.set_inheritable(report, False)
    argv = args[cut + 1:]
    if not argv:
        fail(report, "no command to run")
    try:
        with open(options["--spec"]) as f:
            spec = json.load(f)
        enter(spec, int(options["--join"]) if "--join" in options else None)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(report, f"could not enter the container's sandbox: {exc}")
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        fail(report, f"exec: {argv[0]!r}: {exc.strerror}")


if __name__ == "__main__":
    main(sys.argv[1:])
