"""Garbage collector decisions (Kubernetes' attemptToDeleteItem) and the API's side of propagationPolicy."""
from __future__ import annotations

import pytest

from api import deletion, errors
from api.registry import lookup
from controllers.garbage_collector import DANGLING, SOLID, WAITING, blocking, decide, owner_state, without_owners

PODS = lookup("", "v1", "pods")
RS = lookup("apps", "v1", "replicasets")


def obj(uid: str, *owners: str, finalizers: list[str] | None = None, deleting: bool = False,
        block: bool = True) -> dict:
    meta = {"name": f"o-{uid}", "namespace": "ns", "uid": uid, "resourceVersion": "1",
            "ownerReferences": [{"kind": "ReplicaSet", "name": f"o-{o}", "uid": o, "blockOwnerDeletion": block}
                                for o in owners]}
    if finalizers:
        meta["finalizers"] = finalizers
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"kind": "ReplicaSet", "metadata": meta, "spec": {}}


def test_owner_state_is_by_uid_not_name():
    """A new object under the owner's name is a different owner: the reference dangles."""
    assert owner_state(obj("a"), "a") == SOLID
    assert owner_state(obj("b"), "a") == DANGLING
    assert owner_state(None, "a") == DANGLING
    assert owner_state(obj("a", finalizers=["foregroundDeletion"], deleting=True), "a") == WAITING
    assert owner_state(obj("a", finalizers=["orphan"], deleting=True), "a") == SOLID


def test_a_dependent_stays_while_one_owner_is_solid_and_drops_the_others():
    dep = obj("d", "a", "b", "c")
    assert decide(dep, {"a": SOLID, "b": SOLID, "c": SOLID}, has_dependents=False).action == "keep"
    unlink = decide(dep, {"a": SOLID, "b": DANGLING, "c": WAITING}, has_dependents=False)
    assert (unlink.action, set(unlink.uids)) == ("unlink", {"b", "c"})
    assert [r["uid"] for r in without_owners(dep, set(unlink.uids))] == ["a"]


def test_a_dependent_of_gone_owners_is_deleted_with_the_policy_of_its_own_finalizers():
    assert decide(obj("d", "a", "b"), {"a": DANGLING, "b": DANGLING}, has_dependents=True).policy == "Background"
    assert decide(obj("d", "a", finalizers=["orphan"]), {"a": DANGLING}, has_dependents=True).policy == "Orphan"
    assert decide(obj("d", "a"), {"a": WAITING}, has_dependents=False).policy == "Background"
    decision = decide(obj("d", "a"), {"a": WAITING}, has_dependents=True)
    assert (decision.action, decision.policy) == ("delete", "Foreground")  # the owner waits for the whole tree


def test_objects_already_going_or_without_owners_are_left_alone():
    assert decide(obj("d"), {}, has_dependents=False).action == "keep"
    assert decide(obj("d", "a", deleting=True), {"a": DANGLING}, has_dependents=False).action == "keep"


def test_foreground_waits_only_for_blocking_dependents():
    deps = [obj("x", "a"), obj("y", "a", block=False), obj("z", "b")]
    assert [d["metadata"]["uid"] for d in blocking(deps, "a")] == ["x"]


# -- api/deletion.py: propagationPolicy -------------------------------------------------------------------------

def test_delete_options_read_the_policy_from_query_or_body_and_the_deprecated_orphan_flag():
    assert deletion.propagation(deletion.options({"propagationPolicy": "Foreground"}, {})) == "Foreground"
    assert deletion.propagation(deletion.options({}, {"propagationPolicy": "Orphan"})) == "Orphan"
    assert deletion.propagation(deletion.options({"orphanDependents": True}, {})) == "Orphan"
    assert deletion.propagation(deletion.options({}, {"orphanDependents": "false"})) == "Background"
    assert deletion.propagation(deletion.options(None, {})) == "Background"
    with pytest.raises(errors.ApiError):
        deletion.options({"propagationPolicy": "Sideways"}, {})
    with pytest.raises(errors.ApiError):
        deletion.options({"propagationPolicy": "Orphan", "orphanDependents": True}, {})


def test_foreground_and_orphan_mark_the_owner_with_their_finalizer_background_removes_it():
    rs = obj("r")
    assert deletion.plan(RS, rs, {}) is None
    marked = deletion.plan(RS, rs, {"propagationPolicy": "Foreground"})
    assert marked["metadata"]["finalizers"] == ["foregroundDeletion"] and marked["metadata"]["deletionTimestamp"]
    assert deletion.plan(RS, marked, {"propagationPolicy": "Foreground"}) is marked  # nothing more to write
    switched = deletion.plan(RS, marked, {"propagationPolicy": "Orphan"})
    assert switched["metadata"]["finalizers"] == ["orphan"]
    assert not deletion.finished(RS, switched)
    done = {**switched, "metadata": {**switched["metadata"], "finalizers": []}}
    assert deletion.finished(RS, done)


def test_a_bound_pod_deleted_in_the_foreground_keeps_its_grace_then_goes_when_confirmed_and_unblocked():
    pod = {"kind": "Pod", "metadata": {"name": "p", "namespace": "ns", "uid": "p"}, "spec": {"nodeName": "n1"}}
    marked = deletion.plan(PODS, pod, {"propagationPolicy": "Foreground"})
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    confirmed = deletion.plan(PODS, marked, {"gracePeriodSeconds": 0})  # the kubelet's confirmation
    assert confirmed["metadata"]["deletionGracePeriodSeconds"] == 0
    unblocked = {**confirmed, "metadata": {**confirmed["metadata"], "finalizers": []}}
    assert deletion.finished(PODS, unblocked)
    assert deletion.plan(PODS, pod, {"gracePeriodSeconds": 0}) is None  # a forced delete, no policy
