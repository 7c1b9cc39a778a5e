"""What the channels of exec and attach mean (their framing is node/wsstream.py's), pure.

    0 stdin    client -> container                 b"\\x00ls -l\\n"
    1 stdout   container -> client                 b"\\x01total 8\\n"
    2 stderr   container -> client
    3 error    kubelet -> client, once, at the end: from v4 on a metav1.Status (Success, or Failure; a non-zero exit
               is reason NonZeroExitCode with a cause {"reason": "ExitCode", "message": "3"}); before v4
               (channel.k8s.io, base64.channel.k8s.io) only a failure's message, and nothing for success. Then the
               socket closes.
    4 resize   client -> container (with a TTY)     b'\\x04{"Width":80,"Height":24}'
  255 close    (v5 only) client -> kubelet: b"\\xff\\x00" means "no more stdin": the container's stdin is closed,
               which is how `kubectl exec -i`, `kubectl cp` and the Python client's close_channel(0) end a command
               that reads to EOF

Once the socket is open the kubelet writes an empty message to the first channel the client will read (stdout, else
stderr, else error), as upstream does to say the session is established.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from node import wsstream
from node.wsstream import Message, Protocol, ProtocolError

PROTOCOLS = tuple(wsstream.PROTOCOLS)  # every one: kubectl 1.32 asks for v5 first, the Python client for v5 then v4
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
NAMES = {STDIN: "stdin", STDOUT: "stdout", STDERR: "stderr", ERROR: "error", RESIZE: "resize", CLOSE: "close"}
Status = dict[str, Any]


def check(message: Message, protocol: Protocol) -> Message:
    """A client's message as it may be: stdin data, a resize, or (v5) a close; anything else is a ProtocolError."""
    channel, data = message.channel, message.data
    allowed = (STDIN, RESIZE, CLOSE) if protocol.close else (STDIN, RESIZE)
    if channel not in allowed:
        what = f"the {NAMES[channel]} channel" if channel in NAMES else f"unknown channel {channel}"
        writable = "0 stdin, 4 resize" + (", 255 close" if protocol.close else "")
        raise ProtocolError(f"a client may not write to {what} ({protocol.name or 'no subprotocol'}: a client "
                            f"writes {writable})")
    if channel == CLOSE and data not in (bytes((STDIN,)), bytes((RESIZE,))):
        raise ProtocolError(f"a close message names the channel it closes (0 stdin, 4 resize), not {data[:4]!r}")
    return message


def parse_resize(data: bytes) -> tuple[int, int]:
    """(columns, rows) from a resize message's JSON {"Width": W, "Height": H}."""
    try:
        size = json.loads(data)
        width, height = size["Width"], size["Height"]
    except (ValueError, KeyError, TypeError):
        raise ProtocolError(f'a resize message is JSON {{"Width": W, "Height": H}}, not {data[:60]!r}') from None
    if not all(isinstance(v, int) and 0 <= v < 1 << 16 for v in (width, height)):
        raise ProtocolError(f"a terminal size is two integers below 65536, not {width!r}x{height!r}")
    return width, height


def success() -> Status:
    return _status({"status": "Success"})


def failure(message: str, reason: str = "InternalError") -> Status:
    return _status({"status": "Failure", "message": message, "reason": reason})


def exit_status(code: int, command: list[str]) -> Status:
    """What the error channel carries when the command has ended: Success for 0, else NonZeroExitCode (kubectl
    exits with the code from the ExitCode cause)."""
    if code == 0:
        return success()
    return _status({"status": "Failure", "reason": "NonZeroExitCode",
                    "message": f"command terminated with non-zero exit code: error executing command "
                               f"{command}, exit code {code}",
                    "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}})


def _status(fields: dict[str, Any]) -> Status:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, **fields}


def status_message(status: Status, protocol: Protocol) -> bytes | None:
    """What the error channel carries for `status`: the Status as JSON from v4 on; before v4 a failure's message,
    and nothing at all for success (the client sees the socket close)."""
    if protocol.status:
        return json.dumps(status).encode()
    return None if status["status"] == "Success" else status["message"].encode()


def first_read(opts: StreamOptions) -> int:
    """The channel of the empty message that says the session is established: the first one the client reads."""
    return STDOUT if opts.stdout else STDERR if opts.stderr else ERROR


@dataclass(frozen=True)
class StreamOptions:
    """Which channels a session has, and the command (exec), from the request's query (as kubectl sends it:
    command=sh&command=-c&command=...&stdin=true&stdout=true&stderr=true&tty=false)."""
    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def stream_options(query: Any, *, exec_: bool) -> StreamOptions:
    """ValueError, with the message for a 400, when the query asks for no stream, or exec for no command."""
    def flag(name: str) -> bool:
        return query.get(name, "") in ("true", "1")

    opts = StreamOptions(tuple(query.getall("command", [])), flag("stdin"), flag("stdout"), flag("stderr"),
                         flag("tty"))
    if exec_ and not opts.command:
        raise ValueError("you must specify at least 1 command (command=...)")
    if exec_ and not opts.command[0]:
        raise ValueError("the command's first word (the program to run) is empty")
    if not (opts.stdin or opts.stdout or opts.stderr):
        raise ValueError("you must specify at least one of stdin, stdout, stderr")
    if opts.tty and opts.stderr:
        raise ValueError("with a TTY, stderr is the terminal too: ask for tty or for stderr, not both")
    return opts
