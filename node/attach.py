"""`kubectl attach`: a running container's output from now on, and its stdin when the container has `stdin: true`.

    GET /attach/NAMESPACE/POD/CONTAINER?stdin=true&stdout=true&stderr=true   (WebSocket, v5.channel.k8s.io)

The container's output is what its log shim writes (node/log_shim.py), so attach follows the run's log from its end
(node/container_logs.py RunLog): stdout lines to channel 1, stderr lines to channel 2 (to 1 with a TTY, which this
runtime never gives a container: it has no terminal, `kubectl attach -t` gets its output all the same). Channel 0 is
written to the container's stdin pipe (node/runtime_process.py); without `stdin: true` there is none and input is
refused. The session ends when the run ends (a Success status) or when the client leaves (the container goes on).
"""
from __future__ import annotations

import asyncio
import os

from node import channels
from node.channel_session import ChannelSession
from node.channels import ProtocolError, StreamOptions
from node.container_logs import RunLog

PIPE_FULL_PAUSE = 0.02


async def run(session: ChannelSession, opts: StreamOptions, log: RunLog, stdin_path: str | None) -> None:
    log.skip_existing()
    output = asyncio.create_task(_output(session, opts, log))
    inputs = asyncio.create_task(_inputs(session, opts, stdin_path))
    try:
        await asyncio.wait({output, inputs}, return_when=asyncio.FIRST_COMPLETED)
        if output.done():
            inputs.cancel()
            await asyncio.gather(inputs, return_exceptions=True)
            await session.finish(channels.success())
        elif not inputs.cancelled() and isinstance(inputs.exception(), ProtocolError):
            await session.fail(str(inputs.exception()), "BadRequest")
    finally:
        for task in (output, inputs):
            task.cancel()
        await asyncio.gather(output, inputs, return_exceptions=True)
        log.close()


async def _output(session: ChannelSession, opts: StreamOptions, log: RunLog) -> None:
    async for entries in log.follow():
        for entry in entries:
            stderr = entry.stream == "stderr" and not opts.tty
            if opts.stderr if stderr else opts.stdout:
                await session.send(channels.STDERR if stderr else channels.STDOUT, entry.content)


async def _inputs(session: ChannelSession, opts: StreamOptions, stdin_path: str | None) -> None:
    pipe = None
    try:
        async for message in session.messages():
            message = channels.check(message, session.protocol)
            if message.channel == channels.STDIN:
                if not opts.stdin or stdin_path is None:
                    raise ProtocolError("this container has no stdin to write to (its spec says stdin: false)"
                                        if stdin_path is None else
                                        "data on stdin, which this session did not ask for (stdin=true)")
                if pipe is None:
                    pipe = os.open(stdin_path, os.O_WRONLY | os.O_NONBLOCK)
                await _write(pipe, message.data)
            elif message.channel == channels.RESIZE:
                channels.parse_resize(message.data)  # checked; the container has no terminal to resize
    finally:
        if pipe is not None:
            os.close(pipe)


async def _write(pipe: int, data: bytes) -> None:
    """All of `data` into the container's stdin pipe, waiting while the pipe is full (the container reads slowly)."""
    while data:
        try:
            data = data[os.write(pipe, data):]
        except BlockingIOError:
            await asyncio.sleep(PIPE_FULL_PAUSE)
        except BrokenPipeError:
            return
