"""Request bodies in Kubernetes' protobuf, for the objects kubectl's typed commands send.

`kubectl create namespace|configmap|secret|deployment|service|job|serviceaccount` and `kubectl run`
send `application/vnd.kubernetes.protobuf` and do not fall back to JSON. This module reads those
bodies into the JSON shape the rest of the server works with: the envelope is the 4 bytes "k8s\\0"
and a runtime.Unknown message whose `raw` field holds the object. Field numbers come from the
published generated.proto files of k8s.io/api and k8s.io/apimachinery; only the messages those
commands produce are listed, and a field we do not know is refused (415: send JSON), never dropped.
Answers always go out as JSON, which kubectl accepts.
"""
from __future__ import annotations

import base64
import datetime
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufUnsupported(ValueError):
    pass


# A field is (json name, type). Types: "string", "int", "bool", "bytes", a message name,
# ("repeated", type), ("map", value type), ("inline", message name): its fields sit in the parent.
S, I, B = "string", "int", "bool"
MAP_S = ("map", S)

SCHEMAS: dict[str, dict[int, tuple[str, Any]]] = {
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "bytes"), 3: ("contentEncoding", S), 4: ("contentType", S)},
    "TypeMeta": {1: ("apiVersion", S), 2: ("kind", S)},
    "Time": {1: ("seconds", I), 2: ("nanos", I)},
    "ObjectMeta": {1: ("name", S), 2: ("generateName", S), 3: ("namespace", S), 4: ("selfLink", S), 5: ("uid", S),
                   6: ("resourceVersion", S), 7: ("generation", I), 8: ("creationTimestamp", "Time"),
                   9: ("deletionTimestamp", "Time"), 10: ("deletionGracePeriodSeconds", I), 11: ("labels", MAP_S),
                   12: ("annotations", MAP_S), 13: ("ownerReferences", ("repeated", "OwnerReference")),
                   14: ("finalizers", ("repeated", S))},
    "OwnerReference": {5: ("apiVersion", S), 1: ("kind", S), 3: ("name", S), 4: ("uid", S), 6: ("controller", B),
                       7: ("blockOwnerDeletion", B)},
    "LocalObjectReference": {1: ("name", S)},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", MAP_S), 3: ("binaryData", ("map", "bytes")),
                  4: ("immutable", B)},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", ("map", "bytes")), 3: ("type", S), 4: ("stringData", MAP_S),
               5: ("immutable", B)},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec"), 3: ("status", "NamespaceStatus")},
    "NamespaceSpec": {1: ("finalizers", ("repeated", S))},
    "NamespaceStatus": {1: ("phase", S)},
    "ServiceAccount": {1: ("metadata", "ObjectMeta"), 3: ("imagePullSecrets", ("repeated", "LocalObjectReference")),
                       4: ("automountServiceAccountToken", B)},
    "Pod": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec"), 3: ("status", "PodStatus")},
    "PodStatus": {1: ("phase", S)},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "PodSpec": {1: ("volumes", ("repeated", "Volume")), 2: ("containers", ("repeated", "Container")),
                3: ("restartPolicy", S), 4: ("terminationGracePeriodSeconds", I), 5: ("activeDeadlineSeconds", I),
                6: ("dnsPolicy", S), 7: ("nodeSelector", MAP_S), 8: ("serviceAccountName", S),
                9: ("serviceAccount", S), 10: ("nodeName", S), 16: ("hostname", S), 17: ("subdomain", S),
                19: ("schedulerName", S), 20: ("initContainers", ("repeated", "Container")),
                15: ("imagePullSecrets", ("repeated", "LocalObjectReference")),
                22: ("tolerations", ("repeated", "Toleration")), 21: ("automountServiceAccountToken", B),
                30: ("enableServiceLinks", B)},
    "Toleration": {1: ("key", S), 2: ("operator", S), 3: ("value", S), 4: ("effect", S), 5: ("tolerationSeconds", I)},
    "Container": {1: ("name", S), 2: ("image", S), 3: ("command", ("repeated", S)), 4: ("args", ("repeated", S)),
                  5: ("workingDir", S), 6: ("ports", ("repeated", "ContainerPort")), 7: ("env", ("repeated", "EnvVar")),
                  8: ("resources", "ResourceRequirements"), 9: ("volumeMounts", ("repeated", "VolumeMount")),
                  13: ("terminationMessagePath", S), 14: ("imagePullPolicy", S), 16: ("stdin", B),
                  17: ("stdinOnce", B), 18: ("tty", B), 19: ("envFrom", ("repeated", "EnvFromSource")),
                  20: ("terminationMessagePolicy", S)},
    "ContainerPort": {1: ("name", S), 2: ("hostPort", I), 3: ("containerPort", I), 4: ("protocol", S),
                      5: ("hostIP", S)},
    "EnvVar": {1: ("name", S), 2: ("value", S), 3: ("valueFrom", "EnvVarSource")},
    "EnvVarSource": {1: ("fieldRef", "ObjectFieldSelector"), 3: ("configMapKeyRef", "KeySelector"),
                     4: ("secretKeyRef", "KeySelector")},
    "ObjectFieldSelector": {1: ("apiVersion", S), 2: ("fieldPath", S)},
    "KeySelector": {1: ("", ("inline", "LocalObjectReference")), 2: ("key", S), 3: ("optional", B)},
    "EnvFromSource": {1: ("prefix", S), 2: ("configMapRef", "RefSource"), 3: ("secretRef", "RefSource")},
    "RefSource": {1: ("", ("inline", "LocalObjectReference")), 2: ("optional", B)},
    "ResourceRequirements": {1: ("limits", ("map", "Quantity")), 2: ("requests", ("map", "Quantity"))},
    "Quantity": {1: ("string", S)},
    "VolumeMount": {1: ("name", S), 2: ("readOnly", B), 3: ("mountPath", S), 4: ("subPath", S)},
    "Volume": {1: ("name", S), 2: ("", ("inline", "VolumeSource"))},
    "VolumeSource": {2: ("emptyDir", "EmptyDirVolumeSource"), 6: ("secret", "SecretVolumeSource"),
                     19: ("configMap", "ConfigMapVolumeSource")},
    "EmptyDirVolumeSource": {1: ("medium", S), 2: ("sizeLimit", "Quantity")},
    "SecretVolumeSource": {1: ("secretName", S), 2: ("items", ("repeated", "KeyToPath")), 3: ("defaultMode", I),
                           4: ("optional", B)},
    "ConfigMapVolumeSource": {1: ("", ("inline", "LocalObjectReference")), 2: ("items", ("repeated", "KeyToPath")),
                              3: ("defaultMode", I), 4: ("optional", B)},
    "KeyToPath": {1: ("key", S), 2: ("path", S), 3: ("mode", I)},
    "LabelSelector": {1: ("matchLabels", MAP_S), 2: ("matchExpressions", ("repeated", "LabelSelectorRequirement"))},
    "LabelSelectorRequirement": {1: ("key", S), 2: ("operator", S), 3: ("values", ("repeated", S))},
    "IntOrString": {1: ("type", I), 2: ("intVal", I), 3: ("strVal", S)},
    "Deployment": {1: ("metadata", "ObjectMeta"), 2: ("spec", "DeploymentSpec"), 3: ("status", "Empty")},
    "DeploymentSpec": {1: ("replicas", I), 2: ("selector", "LabelSelector"), 3: ("template", "PodTemplateSpec"),
                       4: ("strategy", "DeploymentStrategy"), 5: ("minReadySeconds", I),
                       6: ("revisionHistoryLimit", I), 7: ("paused", B), 9: ("progressDeadlineSeconds", I)},
    "DeploymentStrategy": {1: ("type", S), 2: ("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: ("maxUnavailable", "IntOrString"), 2: ("maxSurge", "IntOrString")},
    "Service": {1: ("metadata", "ObjectMeta"), 2: ("spec", "ServiceSpec"), 3: ("status", "Empty")},
    "ServiceSpec": {1: ("ports", ("repeated", "ServicePort")), 2: ("selector", MAP_S), 3: ("clusterIP", S),
                    4: ("type", S), 5: ("externalIPs", ("repeated", S)), 7: ("sessionAffinity", S),
                    10: ("externalName", S), 18: ("clusterIPs", ("repeated", S))},
    "ServicePort": {1: ("name", S), 2: ("protocol", S), 3: ("port", I), 4: ("targetPort", "IntOrString"),
                    5: ("nodePort", I), 6: ("appProtocol", S)},
    "Job": {1: ("metadata", "ObjectMeta"), 2: ("spec", "JobSpec"), 3: ("status", "Empty")},
    "JobSpec": {1: ("parallelism", I), 2: ("completions", I), 3: ("activeDeadlineSeconds", I), 7: ("backoffLimit", I),
                4: ("selector", "LabelSelector"), 5: ("manualSelector", B), 6: ("template", "PodTemplateSpec"),
                8: ("ttlSecondsAfterFinished", I), 9: ("completionMode", S), 10: ("suspend", B)},
    "Empty": {},
    # policy/v1: kubectl create pdb
    "PodDisruptionBudget": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodDisruptionBudgetSpec"),
                            3: ("status", "Empty")},
    "PodDisruptionBudgetSpec": {1: ("minAvailable", "IntOrString"), 2: ("selector", "LabelSelector"),
                                3: ("maxUnavailable", "IntOrString"), 4: ("unhealthyPodEvictionPolicy", S)},
    # rbac.authorization.k8s.io/v1: kubectl create role|clusterrole|rolebinding|clusterrolebinding
    "Role": {1: ("metadata", "ObjectMeta"), 2: ("rules", ("repeated", "PolicyRule"))},
    "ClusterRole": {1: ("metadata", "ObjectMeta"), 2: ("rules", ("repeated", "PolicyRule"))},
    "PolicyRule": {1: ("verbs", ("repeated", S)), 2: ("apiGroups", ("repeated", S)), 3: ("resources", ("repeated", S)),
                   4: ("resourceNames", ("repeated", S)), 5: ("nonResourceURLs", ("repeated", S))},
    "RoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", ("repeated", "Subject")), 3: ("roleRef", "RoleRef")},
    "ClusterRoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", ("repeated", "Subject")),
                           3: ("roleRef", "RoleRef")},
    "Subject": {1: ("kind", S), 2: ("apiGroup", S), 3: ("name", S), 4: ("namespace", S)},
    "RoleRef": {1: ("apiGroup", S), 2: ("kind", S), 3: ("name", S)},
    # authentication.k8s.io/v1 and authorization.k8s.io/v1: kubectl create token, auth whoami, auth can-i [--list]
    "TokenRequest": {1: ("metadata", "ObjectMeta"), 2: ("spec", "TokenRequestSpec"), 3: ("status", "Empty")},
    "TokenRequestSpec": {1: ("audiences", ("repeated", S)), 3: ("boundObjectRef", "BoundObjectReference"),
                         4: ("expirationSeconds", I)},
    "BoundObjectReference": {1: ("kind", S), 2: ("apiVersion", S), 3: ("name", S), 4: ("uid", S)},
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta"), 2: ("status", "Empty")},
    "SelfSubjectAccessReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "SelfSubjectAccessReviewSpec"),
                                3: ("status", "Empty")},
    "SelfSubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes"),
                                    2: ("nonResourceAttributes", "NonResourceAttributes")},
    "ResourceAttributes": {1: ("namespace", S), 2: ("verb", S), 3: ("group", S), 4: ("version", S), 5: ("resource", S),
                           6: ("subresource", S), 7: ("name", S)},
    "NonResourceAttributes": {1: ("path", S), 2: ("verb", S)},
    "SelfSubjectRulesReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "SelfSubjectRulesReviewSpec"),
                               3: ("status", "Empty")},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", S)},
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def _fields(data: bytes):
    """Yield (field number, wire type, value) for each field of a message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
            if len(value) != length:
                raise ValueError("truncated field")
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
            if len(value) != 8:
                raise ValueError("truncated field")
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
            if len(value) != 4:
                raise ValueError("truncated field")
        else:
            raise ProtobufUnsupported(f"unsupported wire type {wire}")
        yield number, wire, value


_WIRE = {S: 2, "bytes": 2, I: 0, B: 0}  # the wire type each scalar comes as; messages come as 2


def _expect(kind: str, wire: int) -> None:
    expected = 2 if kind in SCHEMAS else _WIRE.get(kind)
    if wire != expected:
        raise ValueError(f"a field of type {kind} came with wire type {wire}, not {expected}")


def _scalar(kind: str, wire: int, value: Any) -> Any:
    _expect(kind, wire)
    if kind == S:
        return value.decode("utf-8")
    if kind == "bytes":
        return base64.b64encode(value).decode()  # how JSON carries []byte
    if kind == B:
        return bool(value)
    if kind == I:
        return value - (1 << 64) if value >= 1 << 63 else value
    raise ProtobufUnsupported(f"unknown scalar type {kind}")


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    schema = SCHEMAS.get(name)
    if schema is None:
        raise ProtobufUnsupported(f"the {name} message is not understood")
    out: dict[str, Any] = {}
    for number, wire, value in _fields(data):
        if number not in schema:
            if _zero(wire, value):
                continue  # Go writes every non-pointer field, set or not: an unset one we can skip
            raise ProtobufUnsupported(f"field {number} of {name} is not understood")
        field, kind = schema[number]
        if isinstance(kind, tuple) and kind[0] == "repeated":
            out.setdefault(field, []).append(_value(kind[1], wire, value))
        elif isinstance(kind, tuple) and kind[0] == "map":
            _expect("bytes", wire)
            entry = {n: (w, v) for n, w, v in _fields(value)}
            key = _scalar(S, *entry.get(1, (2, b"")))
            out.setdefault(field, {})[key] = _value(kind[1], *entry.get(2, (2, b"")))
        elif isinstance(kind, tuple) and kind[0] == "inline":
            _expect(kind[1], wire)
            out.update(decode_message(kind[1], value))
        else:
            decoded = _value(kind, wire, value)
            if decoded in ("", 0, False) and field not in KEEP_ZERO and kind in (S, I, B):
                continue  # what JSON's omitempty leaves out
            out[field] = decoded
    return _shape(name, out)


# Pointer fields, where an explicit zero means something (replicas: 0 is not "default").
KEEP_ZERO = {"replicas", "revisionHistoryLimit", "progressDeadlineSeconds", "parallelism", "completions",
             "backoffLimit", "activeDeadlineSeconds", "terminationGracePeriodSeconds", "ttlSecondsAfterFinished"}


def _zero(wire: int, value: Any) -> bool:
    """An unset field as Go writes it: 0, an empty string, or a message of unset fields."""
    if wire == 0:
        return value == 0
    if wire in (1, 5):
        return not any(value)
    try:
        return all(_zero(w, v) for _, w, v in _fields(value))
    except ValueError:  # not a message: a string or bytes that are set
        return False


def _value(kind: str, wire: int, value: Any) -> Any:
    if kind in SCHEMAS:
        _expect(kind, wire)
        return decode_message(kind, value)
    return _scalar(kind, wire, value)


def _shape(name: str, obj: dict[str, Any]) -> Any:
    """Messages whose JSON form is not an object."""
    if name == "Time":
        if not obj.get("seconds"):
            return None
        return datetime.datetime.fromtimestamp(obj["seconds"], datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if name == "IntOrString":
        return obj.get("strVal", "") if obj.get("type") == 1 else obj.get("intVal", 0)
    if name == "Quantity":
        return obj.get("string", "0")
    if name == "ObjectMeta":
        return {k: v for k, v in obj.items() if v is not None}
    return obj


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the JSON object it stands for."""
    if not body.startswith(MAGIC):
        raise ProtobufUnsupported("the body does not start with the Kubernetes protobuf magic number")
    envelope = decode_message("Unknown", body[len(MAGIC):])
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    if kind not in SCHEMAS or kind in ("Unknown", "TypeMeta"):
        raise ProtobufUnsupported(f"protobuf bodies of kind {kind!r} are not understood")
    obj = decode_message(kind, base64.b64decode(envelope.get("raw", "")))
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **obj}
