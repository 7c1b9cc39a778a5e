"""Decoding bodies against Kubernetes' own definitions (api/openapi_definitions.json), as kube-apiserver does."""
import copy

from api import schema
from api.registry import RESOURCES

POD = "io.k8s.api.core.v1.Pod"


def pod(**spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}], **spec}}


def test_every_served_kind_has_its_definition():
    assert all(schema.definition_for(r.group, r.version, r.kind) for r in RESOURCES)


def test_a_well_typed_pod_passes_untouched():
    body = pod(tolerations=[{"key": "k", "operator": "Exists"}])
    decoded, found = schema.decode(POD, copy.deepcopy(body))
    assert decoded == body and found.invalid == [] and found.unknown == []


def test_wrong_types_are_reported_with_their_paths():
    body = pod(restartPolicy=7)
    body["status"] = {"containerStatuses": ["x"], "startTime": "yesterday"}
    body["spec"]["containers"][0]["ports"][0]["containerPort"] = "80"
    _, found = schema.decode(POD, body)
    assert sorted(found.invalid) == [
        ("spec.containers[0].ports[0].containerPort", "expected integer, got string"),
        ("spec.restartPolicy", "expected string, got integer"),
        ("status.containerStatuses[0]", "expected object, got string"),
        ("status.startTime", "'yesterday' is not an RFC 3339 time")]


def test_unknown_fields_at_any_depth_are_found_and_pruned():
    body = pod(nodeName="n1")
    body["spec"]["containers"][0]["imagee"] = "typo"
    body["spek"] = {}
    decoded, found = schema.decode(POD, body)
    assert sorted(found.unknown) == ["spec.containers[0].imagee", "spek"]
    assert "imagee" not in decoded["spec"]["containers"][0] and "spek" not in decoded


def test_times_come_back_in_kubernetes_form_and_int_or_string_takes_both():
    event = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod"},
             "firstTimestamp": "2024-01-01T02:00:00.123456+02:00", "eventTime": "2024-01-01T00:00:00.5Z"}
    decoded, found = schema.decode("io.k8s.api.core.v1.Event", event)
    assert found.invalid == []
    assert decoded["firstTimestamp"] == "2024-01-01T00:00:00Z"
    assert decoded["eventTime"] == "2024-01-01T00:00:00.500000Z"  # MicroTime keeps microseconds
    svc = {"spec": {"ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8081}]}}
    assert schema.decode("io.k8s.api.core.v1.Service", svc)[1].invalid == []


def test_integers_out_of_their_range_and_bad_base64_are_invalid():
    _, found = schema.decode("io.k8s.api.apps.v1.Deployment", {"spec": {"replicas": 1 << 40}})
    assert found.invalid == [("spec.replicas", f"{1 << 40} is out of range for int32")]
    _, found = schema.decode("io.k8s.api.core.v1.Secret", {"data": {"k": "not base64!"}})
    assert found.invalid == [("data.k", "illegal base64 data")]


def test_the_committed_definitions_are_what_the_generator_makes():
    """api/openapi_definitions.json comes from kubernetes-validate's copy of Kubernetes' OpenAPI definitions."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "tools/gen_openapi_definitions.py", "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_the_openapi_documents_are_openapi_not_json_schema():
    """Every type a plain string (never a list), every $ref to the document's own schemas, every one defined."""
    import json

    from api import openapi

    for group, version in (("", "v1"), ("apps", "v1"), ("rbac.authorization.k8s.io", "v1")):
        doc = openapi.document_v3(group, version)
        schemas = doc["components"]["schemas"]
        text = json.dumps(doc)
        assert "#/$defs/" not in text
        refs = {r.split("/")[-1] for r in _all(doc, "$ref")}
        assert refs <= set(schemas), refs - set(schemas)
        assert all(isinstance(t, str) for t in _all(schemas, "type")), group
    assert openapi.document_v2()["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == \
        "int-or-string"


def _all(node, key):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and not isinstance(v, dict):
                yield v
            elif k == "properties":
                for prop in v.values():
                    yield from _all(prop, key)
            else:
                yield from _all(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _all(v, key)
