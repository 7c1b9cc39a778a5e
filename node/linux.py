"""The Linux calls a pod's sandbox needs and Python 3.11's os module lacks (os.unshare and os.setns arrive in 3.12,
mount and pivot_root never): unshare, setns, mount, umount2, pivot_root and prctl, called in libc through ctypes.

Standard library only: node/enter.py, which uses it, runs as a script outside the kubelet's virtualenv. Each call
raises OSError with errno and the call's name, as os's own functions do.
"""
from __future__ import annotations

import ctypes
import os
import platform

CLONE_NEWNS = 0x00020000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2

PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# glibc has no pivot_root(); its number differs between architectures (the kernel's syscall tables).
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "armv7l": 218, "i686": 217,
              "s390x": 217, "ppc64le": 203}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _check(result: int, call: str, *paths: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{call}: {os.strerror(errno)}", *paths[:1])
    return result


def _path(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None
          ) -> None:
    _check(_libc.mount(_path(source), _path(target), _path(fstype), flags, _path(data)), "mount", target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_path(target), flags), "umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    number = PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(38, f"pivot_root: its system call number on {platform.machine()} is not in node/linux.py")
    _check(_libc.syscall(number, _path(new_root), _path(put_old)), "pivot_root", new_root)


def prctl(option: int, arg: int = 0, arg3: int = 0) -> int:
    return _check(_libc.prctl(option, arg, arg3, 0, 0), "prctl")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def set_capabilities(capabilities: list[int]) -> None:
    """This thread's effective, permitted and inheritable sets become exactly `capabilities` (capset(2))."""
    data = (_CapData * 2)()
    for cap in capabilities:
        word, bit = divmod(cap, 32)
        data[word].effective |= 1 << bit
        data[word].permitted |= 1 << bit
        data[word].inheritable |= 1 << bit
    _check(_libc.capset(ctypes.byref(_CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)), data), "capset")


def last_capability() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())
