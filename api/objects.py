"""What the server fills in and checks on every object: metadata on create, the rules of update."""
from __future__ import annotations

import datetime
import re
import secrets
import uuid
from typing import Any

from api import errors
from api.registry import Resource

Obj = dict[str, Any]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet


def now() -> str:
    return timestamp(datetime.datetime.now(datetime.timezone.utc).timestamp())


def timestamp(seconds: float) -> str:
    """A Unix time as Kubernetes writes metav1.Time."""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


PATH_SEGMENT_NAMES = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}  # system:... names are fine


def _name_problem(res: Resource, name: str) -> str | None:
    if res.kind in PATH_SEGMENT_NAMES:
        ok = name not in (".", "..") and "/" not in name and "%" not in name
        rule = "a valid path segment name (not '.' or '..', no '/' or '%')"
    elif res.kind == "Namespace":
        ok = len(name) <= 63 and DNS1123_LABEL.match(name)
        rule = "a lowercase RFC 1123 label (lowercase letters, digits and '-', at most 63 characters)"
    else:
        ok = len(name) <= 253 and DNS1123_SUBDOMAIN.match(name)
        rule = "a lowercase RFC 1123 subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)"
    return None if ok else f"Invalid value: {name!r}: must be {rule}"


def _key_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return f"Invalid value: {key!r}: prefix part must be a DNS subdomain"
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        return (f"Invalid value: {key!r}: name part must consist of alphanumeric characters, '-', '_' or '.', "
                "start and end with an alphanumeric character, at most 63 characters")
    return None


OMIT_EMPTY = ("labels", "annotations", "finalizers", "ownerReferences", "managedFields")
_META_TYPES = {"name": str, "generateName": str, "namespace": str, "labels": dict, "annotations": dict,
               "finalizers": list, "ownerReferences": list, "managedFields": list}


def check_shape(res: Resource, body: Any) -> None:
    """Before anything reads it: the body is an object, its metadata too, with fields of the right types."""
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a JSON or YAML object")
    meta = body.get("metadata", {})
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    causes = [(f"metadata.{k}", f"Invalid value: must be a {t.__name__}") for k, t in _META_TYPES.items()
              if meta.get(k) is not None and not isinstance(meta[k], t)]
    causes += [(k, "Invalid value: must be an object") for k in ("spec", "status")
               if body.get(k) is not None and not isinstance(body[k], dict)]
    if isinstance(meta.get("finalizers"), list) and not all(isinstance(f, str) for f in meta["finalizers"]):
        causes.append(("metadata.finalizers", "Invalid value: must be a list of strings"))
    for i, ref in enumerate(meta.get("ownerReferences") or [] if isinstance(meta.get("ownerReferences"), list) else []):
        if not isinstance(ref, dict) or not all(isinstance(ref.get(k), str) and ref.get(k)
                                                for k in ("apiVersion", "kind", "name", "uid")):
            causes.append((f"metadata.ownerReferences[{i}]", "Invalid value: needs apiVersion, kind, name and uid"))
    if causes:
        raise errors.invalid(res.kind, str(meta.get("name") or ""), causes, res.group)


def check_metadata(res: Resource, obj: Obj) -> None:
    """422 Invalid, with a cause per bad field, for a bad name, labels or annotations."""
    meta = obj["metadata"]
    causes = []
    problem = _name_problem(res, meta.get("name", ""))
    if problem:
        causes.append(("metadata.name", problem))
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    if not isinstance(labels, dict) or not isinstance(annotations, dict):
        causes.append(("metadata.labels", "labels and annotations must be maps of strings"))
    else:
        for key, value in labels.items():
            problem = _key_problem(key)
            if problem:
                causes.append((f"metadata.labels.{key}", problem))
            elif not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
                causes.append((f"metadata.labels.{key}", f"Invalid value: {value!r}: a label value must be at most "
                               "63 alphanumeric characters, '-', '_' or '.', starting and ending alphanumeric"))
        for key, value in annotations.items():
            problem = _key_problem(key)
            if problem or not isinstance(value, str):
                causes.append((f"metadata.annotations.{key}", problem or "annotation values must be strings"))
    if causes:
        raise errors.invalid(res.kind, meta.get("name", ""), causes, res.group)


def for_create(res: Resource, body: Any, namespace: str | None) -> Obj:
    """The object to store for a create: kind, apiVersion, name, namespace, uid, timestamps."""
    check_shape(res, body)
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind not in (None, res.kind) or api_version not in (None, res.group_version):
        raise errors.bad_request(f"the body is a {api_version}/{kind}, not a {res.group_version}/{res.kind}")
    meta = dict(body.get("metadata") or {})
    if res.namespaced:
        if meta.get("namespace") not in (None, "", namespace):
            raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                     "sent on the request")
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    if not meta.get("name"):
        if not meta.get("generateName"):
            raise errors.invalid(res.kind, "", [("metadata.name", "Required value: name or generateName is required")],
                                 res.group)
        meta["name"] = meta["generateName"] + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
    for server_owned in ("resourceVersion", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(server_owned, None)
    meta.update(uid=str(uuid.uuid4()), creationTimestamp=now())
    if res.has_generation:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    obj = {**body, "apiVersion": res.group_version, "kind": res.kind, "metadata": _without_empty(meta)}
    check_metadata(res, obj)
    return obj


def _without_empty(meta: Obj) -> Obj:
    """Metadata as kube-apiserver stores it: an empty map or list of these fields is no field at all (omitempty), so
    `kubectl diff` and `-o yaml` show no `annotations: {}` a client sent."""
    return {k: v for k, v in meta.items() if not (k in OMIT_EMPTY and v in ({}, []))}


def for_update(res: Resource, old: Obj, body: Any, subresource: str | None) -> Obj:
    """The object to store for a PUT: identity kept; with a status subresource, a PUT of the object
    leaves status alone and a PUT of /status changes only status. Spec changes raise generation (of the kinds
    that have one)."""
    check_shape(res, body)
    old_meta = old["metadata"]
    meta = dict(body.get("metadata") or {})
    if meta.get("name") not in (None, old_meta["name"]):
        raise errors.bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                                 f"({old_meta['name']})")
    for kept in ("name", "namespace", "uid", "creationTimestamp", "generation", "deletionTimestamp",
                 "deletionGracePeriodSeconds"):
        if kept in old_meta:
            meta[kept] = old_meta[kept]
        else:
            meta.pop(kept, None)  # the server's to set, not the client's
    meta.pop("resourceVersion", None)
    if subresource == "status":
        new = {**old, "status": body.get("status")}
        new["metadata"] = {**old_meta}
        new["metadata"].pop("resourceVersion", None)
    else:
        new = {**body, "apiVersion": res.group_version, "kind": res.kind, "metadata": meta}
        if "status" in res.subresources:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
    if res.has_generation and _spec(new) != _spec(old):
        new["metadata"]["generation"] = int(old_meta.get("generation", 1)) + 1
    elif not res.has_generation:
        new["metadata"].pop("generation", None)  # stored by an older version
    if new.get("status") is None:
        new.pop("status", None)
    new["metadata"] = _without_empty(new["metadata"])
    check_metadata(res, new)
    return new


def _spec(obj: Obj) -> Any:
    """What counts as spec for generation: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
