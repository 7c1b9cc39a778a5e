"""Container log lines as the CRI runtimes write them, and the selections `kubectl logs` asks for (pure).

node/log_shim.py captures a container's output and writes each line with the time it was read and its stream:

    2026-12-06T21:58:52.123456789Z stdout F hello, world
    2026-12-06T21:58:52.125000000Z stderr P the first 16 KiB of a very long line ...
    2026-12-06T21:58:52.125000100Z stderr F ... and its end

(F: the line ends here; P: a part, continued by the next entry.) The kubelet reads them back and answers
`pods/log` with the content only, or, with `timestamps=true`, each line prefixed by its time (RFC 3339 with
nanoseconds, as the kubelet prints it); `sinceSeconds`/`sinceTime` drop older lines, `tailLines` keeps the last
lines, `limitBytes` cuts the answer.
"""
from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from typing import Iterable

FULL, PARTIAL = b"F", b"P"
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)$")


@dataclass(frozen=True)
class Entry:
    time_ns: int
    stream: str  # "stdout" | "stderr"
    content: bytes  # with its newline when the line ends here
    partial: bool = False


def stamp(time_ns: int) -> str:
    """RFC 3339 in UTC with nine fractional digits: 2026-12-06T21:58:52.123456789Z."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch from an RFC 3339 time; ValueError if it is not one."""
    m = _RFC3339.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not an RFC 3339 time (2026-12-06T21:58:52Z)")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, zone = m.group(7) or "", m.group(8).upper()
    seconds = calendar.timegm((year, month, day, hour, minute, second))
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


def encode(stream: str, content: bytes, time_ns: int, *, partial: bool = False) -> bytes:
    """One log entry; `content` without its newline."""
    return b"%s %s %s %s\n" % (stamp(time_ns).encode(), stream.encode(), PARTIAL if partial else FULL, content)


def parse(line: bytes) -> Entry:
    """An entry from one line of a log file (with its newline); a line in no known format is kept whole, as stdout
    at time 0 (it then passes any `since`)."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) >= 3 and parts[1] in (b"stdout", b"stderr") and parts[2] in (FULL, PARTIAL):
        try:
            when = parse_time(parts[0].decode())
        except (ValueError, UnicodeDecodeError):
            return Entry(0, "stdout", line)
        content = parts[3] if len(parts) == 4 else b""
        partial = parts[2] == PARTIAL
        return Entry(when, parts[1].decode(), content if partial else content + b"\n", partial)
    return Entry(0, "stdout", line)


def parse_all(data: bytes) -> list[Entry]:
    """Every complete line of `data` (a trailing piece without a newline is still being written: left out)."""
    lines = data.split(b"\n")
    return [parse(line + b"\n") for line in lines[:-1]]


def select(entries: list[Entry], *, tail_lines: int | None = None, since_ns: int | None = None) -> list[Entry]:
    """The last `tail_lines` lines (a line may span several partial entries), then those not older than `since`."""
    if tail_lines is not None:
        if tail_lines <= 0:
            return []
        ends = [i for i, e in enumerate(entries) if not e.partial]
        start = ends[-tail_lines - 1] + 1 if len(ends) > tail_lines else 0
        entries = entries[start:]
    if since_ns is not None:
        entries = [e for e in entries if e.time_ns >= since_ns]
    return entries


def render(entries: Iterable[Entry], *, timestamps: bool = False, continuing: bool = False) -> bytes:
    """What `kubectl logs` prints: the content, each line after its time when `timestamps`. `continuing`: the
    first entry goes on with a line begun before (the last of what was rendered then was partial)."""
    out = bytearray()
    line_start = not continuing
    for e in entries:
        if timestamps and line_start:
            out += stamp(e.time_ns).encode() + b" "
        out += e.content
        line_start = not e.partial
    return bytes(out)
