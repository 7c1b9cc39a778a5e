"""A kubeconfig for a local cluster, so that `kubectl` (and the Python client) find it."""
from __future__ import annotations

import base64
import json
import os


def render(server: str, token: str | None = None, ca_file: str | None = None, name: str = "raftkube") -> str:
    cluster = {"server": server}
    if ca_file:
        with open(ca_file, "rb") as f:
            cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": name, "preferences": {},
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token} if token else {}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}],
    }
    return json.dumps(config, indent=2) + "\n"  # JSON is YAML: kubectl reads it as it is


def write(path: str, server: str, token: str | None = None, ca_file: str | None = None) -> str:
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(render(server, token, ca_file))
    os.replace(tmp, path)
    return path
