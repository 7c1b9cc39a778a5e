"""The log shim: runs one container's command and writes its output as timestamped log lines (node/log_format.py),
as containerd's shim or conmon do for real runtimes.

    python3 -E -s -S node/log_shim.py --log DIR/current.log --max-bytes N --exit-file DIR/exit.json [--pass-fd N] \
        -- ARGV...

Why a process of its own: a kubelet may be killed and started again while its containers run (it adopts them,
node/runtime_process.py). Had the kubelet read the container's output through a pipe, the pipe would break with it;
the shim lives exactly as long as the container, in its session, and is signalled with it. It
- starts the command with the shim's own environment, working directory and stdin (the runtime set them up), and
  descriptor --pass-fd, which it closes itself (node/launch.py: the command's report that it started);
- lets SIGTERM, SIGINT and SIGHUP pass: they are for the container (the kubelet signals the whole process group),
  and the shim keeps reading until the container's output ends;
- stamps each line with the time it was read; a line longer than 16 KiB is written in parts (P entries);
- rotates the log once it passes --max-bytes (current.log -> current.log.1), being its only writer;
- takes the container with it if it is killed (the container's parent-death signal is SIGKILL): a kill -9 of the
  pid the kubelet reports ends the container, as it would end a container's init process;
- exits with the container's code (128+N after signal N) and writes it to the exit file, so a kubelet that adopted
  the container (not its child) learns how it ended.
Only the standard library: it starts in milliseconds and needs nothing of the kubelet's virtualenv.
"""
from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from node import log_format  # noqa: E402 - the shim runs as a script, its package put on the path above

MAX_LINE = 16 << 10
PR_SET_PDEATHSIG = 1
DRAIN_AFTER_EXIT = 2.0  # seconds to keep reading after the command ended (its children may still hold the pipes)


class LogFile:
    """The container's log, appended to and rotated by this process alone."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path, self.max_bytes = path, max_bytes
        self.fd = self._open()
        self.size = os.fstat(self.fd).st_size

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    def write(self, data: bytes) -> None:
        if self.size and self.size + len(data) > self.max_bytes:
            os.replace(self.path, self.path + ".1")
            os.close(self.fd)
            self.fd, self.size = self._open(), 0
        os.write(self.fd, data)
        self.size += len(data)


class Lines:
    """One stream's bytes cut into log entries: whole lines, or 16 KiB parts of a longer one."""

    def __init__(self, stream: str, log: LogFile) -> None:
        self.stream, self.log, self.pending = stream, log, b""

    def feed(self, data: bytes) -> None:
        now = time.time_ns()
        self.pending += data
        out = []
        while True:
            cut = self.pending.find(b"\n")
            if cut < 0 or cut > MAX_LINE:
                break
            out.append(log_format.encode(self.stream, self.pending[:cut], now))
            self.pending = self.pending[cut + 1:]
        while len(self.pending) > MAX_LINE:
            out.append(log_format.encode(self.stream, self.pending[:MAX_LINE], now, partial=True))
            self.pending = self.pending[MAX_LINE:]
        if out:
            self.log.write(b"".join(out))

    def close(self) -> None:
        if self.pending:
            self.log.write(log_format.encode(self.stream, self.pending, time.time_ns()))
            self.pending = b""


def die_with_parent(parent: int) -> None:
    """In the container's process, before it execs: SIGKILL when the shim dies (and now, if it died already)."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def run(argv: list[str], log: LogFile, pass_fds: tuple[int, ...]) -> int:
    shim = os.getpid()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds,
                                preexec_fn=lambda: die_with_parent(shim))
    except OSError as exc:
        log.write(log_format.encode("stderr", f"failed to start {argv[0]!r}: {exc.strerror}".encode(),
                                    time.time_ns()))
        return 127
    finally:
        for fd in pass_fds:
            os.close(fd)
    streams = {proc.stdout: Lines("stdout", log), proc.stderr: Lines("stderr", log)}
    selector = selectors.DefaultSelector()
    for pipe in streams:
        os.set_blocking(pipe.fileno(), False)
        selector.register(pipe, selectors.EVENT_READ)
    deadline = None
    while selector.get_map():
        if deadline is None and proc.poll() is not None:
            deadline = time.monotonic() + DRAIN_AFTER_EXIT
        if deadline is not None and time.monotonic() > deadline:
            break
        for key, _ in selector.select(timeout=0.5):
            chunk = os.read(key.fd, 65536)
            if chunk:
                streams[key.fileobj].feed(chunk)
            else:
                selector.unregister(key.fileobj)
    for lines in streams.values():
        lines.close()
    code = proc.wait()
    return 128 - code if code < 0 else code


def main(args: list[str]) -> int:
    cut = args.index("--")
    options = dict(zip(args[:cut:2], args[1:cut:2]))
    log = LogFile(options["--log"], int(options["--max-bytes"]))
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)  # a handler, not SIG_IGN: the command starts with the default again
    code = run(args[cut + 1:], log, (int(options["--pass-fd"]),) if "--pass-fd" in options else ())
    exit_file = options["--exit-file"]
    with open(exit_file + ".tmp", "w") as f:
        json.dump({"exitCode": code}, f)
    os.replace(exit_file + ".tmp", exit_file)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
