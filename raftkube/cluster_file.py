"""`STATE_DIR/cluster.json`: where a running local cluster's processes are (its fields: docs/design.md)."""
from __future__ import annotations

import json
import os
from typing import Any


def path(state_dir: str) -> str:
    return os.path.join(state_dir, "cluster.json")


def read(state_dir: str) -> dict[str, Any]:
    try:
        with open(path(state_dir)) as f:
            return json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"raftkube: no cluster is running from {state_dir} ({path(state_dir)} is missing); "
                         "start one with `raftkube up` or pass --state-dir") from None


def write(state_dir: str, data: dict[str, Any]) -> None:
    tmp = path(state_dir) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path(state_dir))


def find(info: dict[str, Any], name: str) -> dict[str, Any]:
    for m in info["masters"]:
        if m["name"] == name:
            return m
    names = ", ".join(m["name"] for m in info["masters"])
    raise SystemExit(f"raftkube: no master named {name!r} (the masters are {names})")
