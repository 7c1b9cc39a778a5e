"""How a tool reaches a cluster's KV ports: with cluster.json's "kv_tls" (the KV CA, and the operator's client
certificate and key: raftkube/kv_pki.py), in the form each client takes. No kv_tls: plain KV ports."""
from __future__ import annotations

import ssl

from kvstore import tls

Files = dict[str, str]  # {"ca": ..., "cert": ..., "key": ...}


def context(files: Files | None) -> ssl.SSLContext | None:
    """An ssl context for aiohttp and urllib, or None for plain ports."""
    if not files:
        return None
    try:
        return tls.client_context(files["ca"], files["cert"], files["key"])
    except tls.TLSConfigError as exc:
        raise SystemExit(f"raftkube: the KV client certificate cannot be used: {exc}") from None


def flags(files: Files | None) -> list[str]:
    """etcdctl's and curl's flags for the same files (both name them --cacert, --cert and --key)."""
    return ["--cacert", files["ca"], "--cert", files["cert"], "--key", files["key"]] if files else []
