"""Patches as kubectl sends them: merge (label, scale), JSON patch (rollout undo), strategic (apply, edit)."""
import pytest

from api.errors import ApiError
from api.patch import apply_patch, json_patch, merge, strategic


def test_merge_patch_sets_and_removes():
    obj = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1}}
    out = merge(obj, {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"replicas": 5}})
    assert out == {"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"replicas": 5}}
    assert obj["metadata"]["labels"] == {"a": "1", "b": "2"}  # the original is not touched


def test_strategic_merges_containers_by_name_and_replaces_other_lists():
    obj = {"spec": {"containers": [{"name": "app", "image": "v1", "env": [{"name": "A", "value": "1"}]},
                                   {"name": "side", "image": "s"}],
                    "args": ["x", "y"]}}
    patch = {"spec": {"containers": [{"name": "app", "image": "v2", "env": [{"name": "B", "value": "2"}]},
                                     {"name": "side", "$patch": "delete"}],
                      "args": ["z"], "$setElementOrder/containers": [{"name": "app"}]}}
    out = strategic(obj, patch)
    assert out["spec"]["containers"] == [{"name": "app", "image": "v2",
                                          "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]
    assert out["spec"]["args"] == ["z"]


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
