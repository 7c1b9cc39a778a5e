"""Label and field selectors as kubectl sends them."""
import pytest

from api.errors import ApiError
from api.selectors import parse_fields, parse_labels, single_name


def obj(labels=None, **fields):
    o = {"metadata": {"name": "x", "namespace": "default", "labels": labels or {}}, "spec": {}, "status": {}}
    o["spec"].update(fields.get("spec", {}))
    o["status"].update(fields.get("status", {}))
    return o


@pytest.mark.parametrize("selector,labels,expected", [
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "db"}, False),
    ("app!=web", {}, True),
    ("env in (prod, staging)", {"env": "staging"}, True),
    ("env notin (prod,staging)", {"env": "prod"}, False),
    ("env notin (prod)", {}, True),
    ("release", {"release": ""}, True),
    ("!canary", {"canary": "yes"}, False),
    ("app=web,env in (prod),!canary", {"app": "web", "env": "prod"}, True),
    ("", {"anything": "x"}, True),
])
def test_label_selectors(selector, labels, expected):
    assert parse_labels(selector)(obj(labels)) is expected


def test_field_selectors_on_the_fields_kubectl_uses():
    pod = obj(spec={"nodeName": "n1"}, status={"phase": "Running"})
    assert parse_fields("spec.nodeName=n1,status.phase=Running")(pod)
    assert not parse_fields("spec.nodeName=n2")(pod)
    assert parse_fields("metadata.namespace!=kube-system")(pod)
    assert single_name("metadata.name=x") == "x" and single_name("metadata.name=x,spec.nodeName=a") is None
    event = {"metadata": {}, "involvedObject": {"kind": "Deployment", "apiVersion": "apps/v1", "name": "web"}}
    assert parse_fields("involvedObject.kind=Deployment,involvedObject.apiVersion=apps/v1,"
                        "involvedObject.name=web")(event), "kubectl events --for deployment/web"


def test_only_a_kinds_selectable_fields_may_be_selected():
    assert parse_fields("status.phase=Running", "Pod")(obj(status={"phase": "Running"}))
    with pytest.raises(ApiError) as err:
        parse_fields("spec.containers=x", "Pod")
    assert err.value.code == 400 and '"spec.containers" is not a known field selector' in err.value.message
    with pytest.raises(ApiError):
        parse_fields("spec.nodeName=n1", "ConfigMap")


@pytest.mark.parametrize("bad", ["app in prod", "a=(b", "!x in (a)"])
def test_garbage_is_a_400(bad):
    with pytest.raises(ApiError) as err:
        parse_labels(bad)
    assert err.value.code == 400

