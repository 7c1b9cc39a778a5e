"""Logging for every raftkube process: one line per significant action, always with the process's name
(the master's or node's), as text for people or JSON for log collectors (`--log-format json`).

    logs.add_argument(parser)            # --log-format text|json
    logs.setup(args.name, args.log_format)

Text:  2026-01-01 12:00:00,123 m1 raftkube.replica: raft leader is now 127.0.0.1:7002 (term 3)
JSON:  {"time":"2026-01-01T12:00:00.123Z","level":"info","name":"m1","logger":"raftkube.replica","msg":"..."}
"""
from __future__ import annotations

import argparse
import datetime
import logging

import orjson

FORMATS = ("text", "json")


def add_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=FORMATS, default="text",
                   help="text (default) or json: one object a line with time, level, name, logger, msg")


class JsonFormatter(logging.Formatter):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        out = {"time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
               "level": record.levelname.lower(), "name": self.name, "logger": record.name,
               "msg": record.getMessage()}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def setup(name: str, fmt: str = "text", level: int = logging.INFO) -> None:
    """Log to stderr as `name` (replacing any handler set before)."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter(name))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {name} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
