"""`kubectl exec` (and `kubectl cp`, which is tar over exec): a command in a container's environment, its standard
streams carried over a channel session (node/channels.py).

    kubectl exec -it web -- sh
      -> the API server's pods/exec (a create), proxied to the pod's kubelet:
      -> GET /exec/NAMESPACE/POD/CONTAINER?command=sh&stdin=true&stdout=true&tty=true   (WebSocket, v5.channel.k8s.io)
      1. the runtime starts the command as it started the container (node/runtime_process.py exec): its environment,
         its working directory where the volumes are; with a TTY on a pseudo-terminal, in a session of its own
      2. pumps: stdout and stderr (or the terminal) -> channels 1 and 2; channel 0 -> stdin, 4 -> the terminal's
         size, 255 -> stdin closed (`kubectl cp` and `exec -i` end their input so)
      3. the command ends: what it wrote is sent, then its exit code on channel 3, and the socket closes.
The client going away kills the command (its whole session); a message the protocol does not allow ends the session
with that error on channel 3; a command that cannot start is reported there too (kubectl prints it, exits 1).
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import termios
from typing import Awaitable, Callable

from node import channels
from node.channel_session import ChannelSession
from node.channels import ProtocolError, StreamOptions
from node.runtime import ContainerError, ExecProcess

DRAIN = 2.0  # seconds to wait for output after the command exits (a background child may hold its pipes)
CHUNK = 32 << 10


async def run(session: ChannelSession, opts: StreamOptions, start: Callable[[], Awaitable[ExecProcess]]) -> None:
    try:
        process = await start()
    except ContainerError as exc:
        await session.fail(exc.message)
        return
    if process.terminal is not None:
        os.set_blocking(process.terminal, False)
    output = [asyncio.create_task(pump) for pump in _outputs(session, process, opts)]
    inputs = asyncio.create_task(_inputs(session, process, opts))
    exited = asyncio.create_task(process.proc.wait())
    try:
        await asyncio.wait({exited, inputs}, return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            await asyncio.wait(output, timeout=DRAIN)
            inputs.cancel()
            await asyncio.gather(inputs, return_exceptions=True)
            code = process.proc.returncode or 0
            await session.finish(channels.exit_status(128 - code if code < 0 else code, list(opts.command)))
        elif not inputs.cancelled() and isinstance(inputs.exception(), ProtocolError):
            await session.fail(str(inputs.exception()), "BadRequest")
    finally:
        for task in (*output, inputs, exited):
            task.cancel()
        _kill(process)
        await asyncio.gather(*output, inputs, exited, return_exceptions=True)
        if process.terminal is not None:
            os.close(process.terminal)


def _outputs(session: ChannelSession, process: ExecProcess, opts: StreamOptions) -> list[Awaitable[None]]:
    if process.terminal is not None:
        return [_pump_terminal(session, process.terminal, opts.stdout)]
    proc = process.proc
    return [_pump(session, proc.stdout, channels.STDOUT if opts.stdout else None),
            _pump(session, proc.stderr, channels.STDERR if opts.stderr else None)]


async def _pump(session: ChannelSession, stream: asyncio.StreamReader | None, channel: int | None) -> None:
    """A pipe's output to its channel (read and dropped when the client did not ask for it)."""
    while stream is not None and (chunk := await stream.read(CHUNK)):
        if channel is not None:
            await session.send(channel, chunk)


async def _pump_terminal(session: ChannelSession, terminal: int, wanted: bool) -> None:
    while chunk := await _read_terminal(terminal):
        if wanted:
            await session.send(channels.STDOUT, chunk)


async def _read_terminal(terminal: int) -> bytes:
    """The next output of a pseudo-terminal; b"" once every process that had it open has closed it (EIO)."""
    while True:
        try:
            return os.read(terminal, CHUNK)
        except BlockingIOError:
            await _ready(terminal, writable=False)
        except OSError:
            return b""


async def _inputs(session: ChannelSession, process: ExecProcess, opts: StreamOptions) -> None:
    """The client's messages: stdin, resizes, close; ends when the client closes its side."""
    stdin_open = opts.stdin
    async for message in session.messages():
        message = channels.check(message, session.protocol)
        if message.channel == channels.STDIN:
            if not opts.stdin:
                raise ProtocolError("data on stdin, which this session did not ask for (stdin=true)")
            if stdin_open:
                stdin_open = await _write_stdin(process, message.data)
        elif message.channel == channels.RESIZE:
            width, height = channels.parse_resize(message.data)
            if process.terminal is not None:
                fcntl.ioctl(process.terminal, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        elif message.data[0] == channels.STDIN and stdin_open:  # close of stdin
            stdin_open = False
            if process.terminal is not None:
                await _write_stdin(process, b"\x04")  # end-of-file, as typed: ^D
            elif process.proc.stdin is not None:
                process.proc.stdin.close()


async def _write_stdin(process: ExecProcess, data: bytes) -> bool:
    """Whether stdin is still open afterwards (the command may have closed it, or ended)."""
    try:
        if process.terminal is not None:
            await _write_terminal(process.terminal, data)
        elif process.proc.stdin is not None:
            process.proc.stdin.write(data)
            await process.proc.stdin.drain()
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


async def _write_terminal(terminal: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(terminal, data):]
        except BlockingIOError:
            await _ready(terminal, writable=True)


async def _ready(terminal: int, *, writable: bool) -> None:
    """Until the terminal can be read (or written) without blocking."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    watch, unwatch = (loop.add_writer, loop.remove_writer) if writable else (loop.add_reader, loop.remove_reader)
    watch(terminal, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        unwatch(terminal)


def _kill(process: ExecProcess) -> None:
    """SIGKILL to the command's session (it leads one), if it still runs."""
    if process.proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.proc.pid, signal.SIGKILL)
