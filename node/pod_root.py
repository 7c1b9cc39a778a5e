"""A container's root: what its processes see as `/`, made by node/enter.py in the container's own mount namespace
(as root, before the process drops to the pod's uid) and pivoted into.

    /usr /bin /sbin /lib* /etc  the node's, read-only (commands run from the node's PATH: no image is unpacked)
    /proc                        a procfs of its own
    /dev                         a tmpfs: null, zero, full, random, urandom, tty, the node's pts, a tmpfs shm
    /tmp                         a tmpfs, the container's scratch space, gone with the container
    /                            a tmpfs the container's user owns: files made there are gone with the container
    each volumeMount             its directory of the node (node/volumes.py Mount) bind-mounted at its mountPath
Nothing else. The state dir, the other pods' volumes, the node's and the masters' data, tokens and keys are not in
it, wherever they are on the node, and after pivot_root the node's mounts are detached from the namespace: no path
leads back. (Hiding the state dir alone, with a tmpfs over it, would leave the rest of the node in view: the
operator's home, other clusters' state dirs, anything readable to the pod's uid.)

A mountPath that does not exist (/etc/config) must be made without writing to the node's /etc: the read-only
directory that should hold it is covered by a tmpfs where each of its entries is bind-mounted back ("shadowed"),
and the mount point is made there. Every path is walked a component at a time with O_NOFOLLOW, and every mount is
made through /proc/self/fd: a symlink a pod left in its emptyDir cannot point a mount (or a mkdir) at the node's
files. A bind is made at a stage of its own, given its flags there, and then moved into place, so no remount ever
resolves a path a pod could have changed.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Any

from node import linux

SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty", "pts")  # pts: the node's, where exec -t's terminal is
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}
PATH_FD = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
SAFE = linux.MS_NOSUID | linux.MS_NODEV
STAGE_DIR, STAGE_FILE = ".stage", ".stage-file"


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _linked(fd: int, path: str, name: str) -> int:
    """`fd`, unless it is a symbolic link (then closed, and an error)."""
    if stat.S_ISLNK(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.ELOOP, f"{path}: {name} is a symbolic link, which a mount does not follow")
    return fd


def open_beneath(base: str, relative: str) -> int:
    """An O_PATH descriptor of `relative` under `base` (the kubelet's own directory), no symlink followed."""
    fd = os.open(base, os.O_PATH | os.O_CLOEXEC)
    for name in (p for p in relative.split("/") if p not in ("", ".")):
        try:
            if name == "..":
                raise OSError(errno.EINVAL, f"{relative}: '..' is not allowed")
            found = os.open(name, PATH_FD, dir_fd=fd)
        finally:
            os.close(fd)
        fd = _linked(found, os.path.join(base, relative), name)
    return fd


def _make(parent: int, name: str, directory: bool) -> None:
    if directory:
        os.mkdir(name, 0o755, dir_fd=parent)
    else:
        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644, dir_fd=parent))


class Root:
    """The root being made: a tmpfs at `path` (a directory of the node, seen only by this mount namespace), owned by
    the container's user, who may write there as in an image's writable layer (gone when the container ends)."""

    def __init__(self, path: str, uid: int, gid: int) -> None:
        linux.mount("tmpfs", path, "tmpfs", SAFE, f"mode=0755,uid={uid},gid={gid}")
        self.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.stages = {True: os.path.join(path, STAGE_DIR), False: os.path.join(path, STAGE_FILE)}
        _make(self.fd, STAGE_DIR, True)
        _make(self.fd, STAGE_FILE, False)

    def attach(self, source: str, target: int, flags: int, *, recursive: bool = False) -> None:
        """Bind `source` on the mount point `target` (an O_PATH descriptor) with `flags`, keeping the read-only and
        noexec of the source's own mount."""
        stage = self.stages[stat.S_ISDIR(os.stat(source).st_mode)]
        linux.mount(source, stage, None, linux.MS_BIND | (linux.MS_REC if recursive else 0))
        kept = os.statvfs(stage).f_flag & (linux.MS_RDONLY | linux.MS_NOEXEC)
        linux.mount(None, stage, None, linux.MS_BIND | linux.MS_REMOUNT | flags | kept)
        linux.mount(stage, fd_path(target), None, linux.MS_MOVE)

    def mountpoint(self, path: str, directory: bool) -> int:
        """An O_PATH descriptor of absolute `path` in the root, made if missing (a directory, or an empty file when
        not `directory`, and the directories above it); read-only directories on the way are shadowed."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        chain: list[tuple[int, str]] = [(os.dup(self.fd), "/")]
        try:
            for i, name in enumerate(parts):
                want_dir = directory or i < len(parts) - 1
                fd = self._lookup(chain[-1][0], name, path)
                if fd is None:
                    self._create(chain, name, want_dir)
                    fd = os.open(name, PATH_FD, dir_fd=chain[-1][0])
                chain.append((fd, name))
                if stat.S_ISDIR(os.fstat(fd).st_mode) != want_dir:
                    raise OSError(errno.ENOTDIR if want_dir else errno.EISDIR, f"{path}: {name} is "
                                  f"{'not ' if want_dir else ''}a directory, and the volume is "
                                  f"{'' if want_dir else 'not '}one")
            return chain.pop()[0]
        finally:
            for fd, _ in chain:
                os.close(fd)

    @staticmethod
    def _lookup(parent: int, name: str, path: str) -> int | None:
        try:
            return _linked(os.open(name, PATH_FD, dir_fd=parent), path, name)
        except FileNotFoundError:
            return None

    def _create(self, chain: list[tuple[int, str]], name: str, directory: bool) -> None:
        try:
            _make(chain[-1][0], name, directory)
        except OSError as exc:
            if exc.errno != errno.EROFS or len(chain) < 2:
                raise
            parent, parent_name = chain.pop()
            chain.append((self._shadow(chain[-1][0], parent, parent_name), parent_name))
            _make(chain[-1][0], name, directory)

    def _shadow(self, grandparent: int, parent: int, name: str) -> int:
        """Cover the read-only directory `parent` (entry `name` of `grandparent`) with a tmpfs holding its entries,
        each bind-mounted back read-only (links copied); answers the covering directory, where entries can be made."""
        try:
            listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parent)
            st = os.fstat(listing)
            linux.mount("tmpfs", fd_path(parent), "tmpfs", SAFE,
                        f"mode={stat.S_IMODE(st.st_mode):o},uid={st.st_uid},gid={st.st_gid}")
        finally:
            os.close(parent)
        try:
            covering = os.open(name, PATH_FD | os.O_DIRECTORY, dir_fd=grandparent)
            for entry in os.listdir(listing):
                self._copy(listing, covering, entry)
            return covering
        finally:
            os.close(listing)

    def _copy(self, listing: int, covering: int, entry: str) -> None:
        mode = os.stat(entry, dir_fd=listing, follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(entry, dir_fd=listing), entry, dir_fd=covering)
            return
        _make(covering, entry, stat.S_ISDIR(mode))
        source, target = os.open(entry, PATH_FD, dir_fd=listing), os.open(entry, PATH_FD, dir_fd=covering)
        try:
            self.attach(fd_path(source), target, SAFE | linux.MS_RDONLY)
        finally:
            os.close(source)
            os.close(target)

    def _mount_on(self, path: str, fstype: str, flags: int, data: str | None = None) -> None:
        fd = self.mountpoint(path, True)
        try:
            linux.mount(fstype, fd_path(fd), fstype, flags, data)
        finally:
            os.close(fd)

    def _bind_at(self, source: str, path: str, flags: int, *, recursive: bool = False) -> None:
        fd = self.mountpoint(path, stat.S_ISDIR(os.stat(source).st_mode))
        try:
            self.attach(source, fd, flags, recursive=recursive)
        finally:
            os.close(fd)

    def system(self) -> None:
        """The node's system directories, read-only; /bin -> usr/bin and its kind copied as links."""
        for name in SYSTEM:
            host = "/" + name
            if os.path.islink(host):
                os.symlink(os.readlink(host), name, dir_fd=self.fd)
            elif os.path.isdir(host):
                self._bind_at(host, host, SAFE | linux.MS_RDONLY, recursive=True)

    def kernel(self) -> None:
        """/proc, /dev and /tmp."""
        self._mount_on("/proc", "proc", SAFE | linux.MS_NOEXEC)
        self._mount_on("/dev", "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC, "mode=0755")
        for name in DEVICES:
            if os.path.exists("/dev/" + name):
                self._bind_at("/dev/" + name, "/dev/" + name, linux.MS_NOSUID | linux.MS_NOEXEC)
        self._mount_on("/dev/shm", "tmpfs", SAFE | linux.MS_NOEXEC, "mode=1777")
        dev = self.mountpoint("/dev", True)
        try:
            for name, target in DEV_LINKS.items():
                os.symlink(target, name, dir_fd=dev)
        finally:
            os.close(dev)
        self._mount_on("/tmp", "tmpfs", SAFE, "mode=1777")

    def volume(self, mount: dict[str, Any]) -> None:
        source = open_beneath(mount["base"], mount["sub_path"])
        try:
            flags = SAFE | (linux.MS_RDONLY if mount["read_only"] else 0)
            self._bind_at(fd_path(source), mount["target"], flags)
        finally:
            os.close(source)

    def enter(self) -> None:
        """Make the root this process's `/`, the node's mounts detached from the namespace."""
        os.rmdir(STAGE_DIR, dir_fd=self.fd)
        os.unlink(STAGE_FILE, dir_fd=self.fd)
        os.fchdir(self.fd)
        os.close(self.fd)
        linux.pivot_root(".", ".")
        linux.umount2(".", linux.MNT_DETACH)
        os.chdir("/")


def build(path: str, mounts: list[dict[str, Any]], working_dir: str, uid: int, gid: int) -> None:
    """Make the container's root at `path` for user `uid` and enter it: the system, /proc, /dev, /tmp, the volumes
    (a mount inside another's path after it) and the working directory, made if missing."""
    root = Root(path, uid, gid)
    root.system()
    root.kernel()
    for mount in sorted(mounts, key=lambda m: m["target"].count("/")):
        root.volume(mount)
    os.close(root.mountpoint(working_dir, True))
    root.enter()
