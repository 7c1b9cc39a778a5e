"""Starting a process through node/enter.py, and learning whether its command started: a container (its log shim
runs enter.py as the container's command), a `kubectl exec`, an exec probe.

The kubelet keeps the read end of a pipe whose write end enter.py holds close-on-exec: end of file comes when the
command's exec closed it (it runs), or after the sentence that says why it could not start. That sentence is the
container's waiting message, or the error kubectl exec prints.
"""
from __future__ import annotations

import asyncio
import os
import sys

ENTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "enter.py")
REPORT_TIMEOUT = 30.0  # seconds; a sandbox is made in milliseconds


def command(spec: str, report_fd: int, argv: list[str], *, join: int | None = None) -> list[str]:
    """The command line that runs `argv` as the spec says (joining the namespace open as `join`)."""
    return [sys.executable, "-E", "-s", "-S", ENTER, "--spec", spec, "--report-fd", str(report_fd),
            *(["--join", str(join)] if join is not None else []), "--", *argv]


class Report:
    """The pipe: `fd` is passed to the child (pass_fds); once it is started, `outcome()`. A context manager that
    closes what is left of it."""

    def __init__(self) -> None:
        self._read, self.fd = os.pipe()

    def __enter__(self) -> "Report":
        return self

    def __exit__(self, *exc: object) -> None:
        self.handed_over()
        if self._read >= 0:
            os.close(self._read)
            self._read = -1

    def handed_over(self) -> None:
        """The child holds its copy of the write end now: ours goes, or no end of file would ever come."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    async def outcome(self) -> str | None:
        """None once the command runs; else why it could not start."""
        self.handed_over()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(self._read, "rb", buffering=0)
        self._read = -1
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe)
        try:
            said = await asyncio.wait_for(reader.read(), REPORT_TIMEOUT)
        except asyncio.TimeoutError:
            return f"it did not start within {REPORT_TIMEOUT:g}s"
        finally:
            transport.close()
        return said.decode("utf-8", "replace") or None
