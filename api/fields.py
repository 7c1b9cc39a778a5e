"""Unknown fields and `fieldValidation`: Strict refuses them (400), Warn answers a Warning header,
Ignore drops them silently; in every case they are not stored (Kubernetes prunes what its types do
not know). Known fields are listed for the top level and metadata; deeper ones pass as they are.
"""
from __future__ import annotations

from typing import Any

from api import errors

COMMON = {"apiVersion", "kind", "metadata"}
TOP_LEVEL: dict[str, set[str]] = {
    "ConfigMap": {"data", "binaryData", "immutable"},
    "Secret": {"data", "stringData", "type", "immutable"},
    "ServiceAccount": {"secrets", "imagePullSecrets", "automountServiceAccountToken"},
    "Endpoints": {"subsets"},
    "Event": {"involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count", "type",
              "eventTime", "series", "action", "related", "reportingComponent", "reportingInstance"},
    "ControllerRevision": {"data", "revision"},
}
WITH_SPEC = {"spec", "status"}
METADATA = {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
            "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
            "ownerReferences", "finalizers", "managedFields"}


def unknown(kind: str, body: dict[str, Any]) -> list[str]:
    known = COMMON | TOP_LEVEL.get(kind, WITH_SPEC)
    found = [k for k in body if k not in known]
    meta = body.get("metadata")
    if isinstance(meta, dict):
        found += [f"metadata.{k}" for k in meta if k not in METADATA]
    return found


def check(kind: str, body: Any, mode: str | None) -> tuple[dict[str, Any], list[str]]:
    """The body without unknown fields, and the warnings to send; 400 in Strict mode."""
    if not isinstance(body, dict):
        return body, []
    mode = mode or "Warn"
    if mode not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(f"fieldValidation must be Strict, Warn or Ignore, not {mode!r}")
    found = unknown(kind, body)
    if not found:
        return body, []
    messages = [f'unknown field "{f}"' for f in found]
    if mode == "Strict":
        raise errors.bad_request("strict decoding error: " + ", ".join(messages))
    pruned = {k: v for k, v in body.items() if k not in found}
    if isinstance(body.get("metadata"), dict):
        pruned["metadata"] = {k: v for k, v in body["metadata"].items() if f"metadata.{k}" not in found}
    return pruned, (messages if mode == "Warn" else [])
