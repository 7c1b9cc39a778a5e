"""Patches as kubectl sends them: merge (label, scale), JSON patch (rollout undo); strategic ones: test_strategic.py."""
import pytest

from api.errors import ApiError
from api.patch import apply_patch, json_patch, merge


def test_merge_patch_sets_and_removes():
    obj = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1}}
    out = merge(obj, {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"replicas": 5}})
    assert out == {"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"replicas": 5}}
    assert obj["metadata"]["labels"] == {"a": "1", "b": "2"}  # the original is not touched


def test_json_patch_operations():
    obj = {"spec": {"template": {"a": 1}, "list": [1, 2]}}
    out = json_patch(obj, [{"op": "replace", "path": "/spec/template", "value": {"b": 2}},
                           {"op": "add", "path": "/spec/list/-", "value": 3},
                           {"op": "remove", "path": "/spec/list/0"},
                           {"op": "test", "path": "/spec/list", "value": [2, 3]}])
    assert out == {"spec": {"template": {"b": 2}, "list": [2, 3]}}
    with pytest.raises(ApiError):
        json_patch(obj, [{"op": "remove", "path": "/nope"}])


def test_an_unknown_patch_type_is_a_415():
    with pytest.raises(ApiError) as err:
        apply_patch("application/x-frobnicate", {}, {})
    assert err.value.code == 415
