"""managedFields of writes that are not applies (api/apply.py record_update), and applies that meet them."""
import copy
import json

import pytest

from api import apply
from api.errors import ApiError

CM = "io.k8s.api.core.v1.ConfigMap"
DEPLOY = "io.k8s.api.apps.v1.Deployment"


def configmap(data: dict, labels: dict | None = None) -> dict:
    meta = {"name": "c", "namespace": "default", **({"labels": labels} if labels else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def owners(obj: dict) -> dict:
    return {(e["manager"], e["operation"], e.get("subresource")): e["fieldsV1"]
            for e in obj["metadata"].get("managedFields", [])}


def write(old: dict | None, new: dict, manager: str, subresource: str | None = None,
          definition: str = CM) -> dict:
    new = copy.deepcopy(new)
    if old is not None:
        new["metadata"].setdefault("managedFields", copy.deepcopy(old["metadata"].get("managedFields")))
    apply.record_update(old, new, manager, "v1", definition, subresource)
    return new


def test_a_create_owns_what_it_set_and_an_edit_takes_what_it_changed():
    created = write(None, configmap({"a": "1", "b": "2"}, {"app": "web"}), "kubectl-create")
    assert owners(created) == {("kubectl-create", "Update", None): {
        "f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}}
    edited = write(created, configmap({"a": "9", "b": "2", "c": "3"}, {"app": "web"}), "kubectl-edit")
    assert owners(edited) == {
        ("kubectl-create", "Update", None): {"f:data": {"f:b": {}}, "f:metadata": {"f:labels": {"f:app": {}}}},
        ("kubectl-edit", "Update", None): {"f:data": {"f:a": {}, "f:c": {}}}}


def test_a_removed_field_is_nobodys_and_a_manager_left_with_nothing_goes():
    created = write(None, configmap({"a": "1"}), "kubectl-create")
    emptied = write(created, {k: v for k, v in configmap({}).items() if k != "data"}, "kubectl-edit")
    assert "managedFields" not in emptied["metadata"]


def test_a_write_that_changes_nothing_changes_no_entry():
    created = write(None, configmap({"a": "1"}), "kubectl-create")
    again = write(created, configmap({"a": "1"}), "kubectl-create")
    assert again["metadata"]["managedFields"] == created["metadata"]["managedFields"]
    untouched = write(created, configmap({"a": "1"}), "someone-else")
    assert untouched["metadata"]["managedFields"] == created["metadata"]["managedFields"]


def test_the_entries_a_write_sends_are_taken_and_none_sent_keeps_the_stored_ones():
    created = write(None, configmap({"a": "1"}), "kubectl-client-side-apply")
    moved = [{**created["metadata"]["managedFields"][0], "manager": "kubectl", "operation": "Apply"}]
    migrated = configmap({"a": "1"})
    migrated["metadata"]["managedFields"] = moved
    assert owners(write(created, migrated, "kubectl"))[("kubectl", "Apply", None)] == {"f:data": {"f:a": {}}}
    replaced = configmap({"a": "1"})  # `kubectl replace -f` of a file without them
    replaced["metadata"]["managedFields"] = []
    assert owners(write(created, replaced, "kubectl-replace")) == owners(created)


def test_a_status_write_is_recorded_with_its_subresource():
    created = write(None, {**configmap({}), "kind": "Deployment", "apiVersion": "apps/v1", "spec": {"replicas": 1}},
                    "kubectl-create", definition=DEPLOY)
    status = write(created, {**created, "status": {"replicas": 1}}, "kube-controller-manager", "status",
                   definition=DEPLOY)
    assert owners(status)[("kube-controller-manager", "Update", "status")] == {"f:status": {"f:replicas": {}}}


def test_an_apply_that_would_undo_a_scale_conflicts_with_its_manager_unless_forced():
    config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}}
    applied = apply.apply(None, config, "kubectl", "apps/v1", DEPLOY)
    scaled = write(applied, {**applied, "spec": {"replicas": 5}}, "kubectl-scale", "scale", definition=DEPLOY)
    assert ("kubectl", "Apply", None) not in owners(scaled)  # replicas was all it owned
    with pytest.raises(ApiError) as conflict:
        apply.apply(scaled, config, "kubectl", "apps/v1", DEPLOY)
    assert conflict.value.code == 409
    assert 'conflict with "kubectl-scale" with subresource "scale" using v1 at 20' in conflict.value.message
    assert conflict.value.message.endswith(": .spec.replicas")
    forced = apply.apply(scaled, config, "kubectl", "apps/v1", DEPLOY, force=True)
    assert forced["spec"]["replicas"] == 1
    assert set(owners(forced)) == {("kubectl", "Apply", None)}
    assert apply.apply(scaled, {**config, "spec": {"replicas": 5}}, "kubectl", "apps/v1", DEPLOY)  # same value


def test_the_manager_is_the_field_manager_else_the_user_agents_product():
    assert apply.manager_of("kubectl-edit", "kubectl/v1.32.4 (linux/amd64)") == "kubectl-edit"
    assert apply.manager_of(None, "kube-controller-manager/v1.32.0 (raftkube)") == "kube-controller-manager"


def test_kubectl_takes_over_what_it_applied_client_side_and_nothing_else():
    """kube-apiserver's upgrade from client-side apply: kubectl's server-side apply may change, without a
    conflict, the fields its last-applied-configuration annotation names; nobody else may, nor kubectl others."""
    last = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    live = configmap({"a": "1"})
    live["metadata"]["annotations"] = {apply.LAST_APPLIED: json.dumps(last)}
    live = write(None, live, "kubectl-client-side-apply")
    live = write(live, {**live, "data": {"a": "1", "b": "edited"}}, "kubectl-edit")
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}}
    assert apply.apply(live, config, "kubectl", "v1", CM)["data"] == {"a": "2", "b": "edited"}
    with pytest.raises(ApiError):
        apply.apply(live, config, "team-a", "v1", CM)
    with pytest.raises(ApiError) as conflict:
        apply.apply(live, {**config, "data": {"a": "2", "b": "mine"}}, "kubectl", "v1", CM)
    assert 'conflict with "kubectl-edit"' in conflict.value.message


@pytest.mark.parametrize("sent", [[{"manager": "x", "fieldsV1": "f:data"}], [{"manager": 5}], ["x"],
                                  [{"manager": "x", "fieldsV1": {"f:data": {"f:a": 1}}}], "x", {"manager": "x"}])
def test_managed_fields_that_cannot_be_read_are_ignored_as_upstream_does(sent):
    created = write(None, configmap({"a": "1"}), "kubectl-create")
    garbled = configmap({"a": "2"})
    garbled["metadata"]["managedFields"] = sent
    edited = write(created, garbled, "kubectl-edit")
    assert set(owners(edited)) == {("kubectl-edit", "Update", None)}  # kubectl-create's only field moved
    stored = {**configmap({"a": "1"}), "metadata": {**configmap({})["metadata"], "managedFields": sent}}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "3"}}
    assert apply.apply(stored, config, "kubectl", "v1", CM)["data"] == {"a": "3"}
