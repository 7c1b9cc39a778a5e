"""Strategic merge patch as kubectl's client-side apply and edit send it: lists merge as their type says
(Kubernetes 1.32's definitions), with the $patch, $setElementOrder, $retainKeys and $deleteFromPrimitiveList
directives. The patches are the ones kubectl computes for each scenario."""
from api.strategic import patch

SERVICE, POD, DEPLOYMENT = "io.k8s.api.core.v1.Service", "io.k8s.api.core.v1.Pod", "io.k8s.api.apps.v1.Deployment"


def test_service_ports_merge_by_port_not_by_a_containers_key():
    """kubectl apply of a Service with ports 80 and 443, then of the same file with 443 changed to 8443."""
    svc = {"spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80},
                              {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]}}
    change = {"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 8443}],
                       "ports": [{"name": "https", "port": 8443, "targetPort": 443}, {"$patch": "delete", "port": 443}]}}
    out = patch(svc, change, SERVICE)
    assert [(p["name"], p["port"]) for p in out["spec"]["ports"]] == [("http", 80), ("https", 8443)]


def test_containers_merge_by_name_env_by_name_and_other_lists_are_replaced():
    pod = {"spec": {"containers": [{"name": "app", "image": "v1", "args": ["x", "y"],
                                    "env": [{"name": "A", "value": "1"}]}, {"name": "side", "image": "s"}]}}
    change = {"spec": {"$setElementOrder/containers": [{"name": "app"}],
                       "containers": [{"name": "app", "image": "v2", "args": ["z"], "env": [{"name": "B", "value": "2"}]},
                                      {"name": "side", "$patch": "delete"}]}}
    out = patch(pod, change, POD)
    assert out["spec"]["containers"] == [{"name": "app", "image": "v2", "args": ["z"],
                                          "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]


def test_tolerations_are_replaced_whole_and_finalizers_merged_as_a_set():
    pod = {"metadata": {"finalizers": ["a"]}, "spec": {"tolerations": [{"key": "x", "operator": "Exists"}]}}
    out = patch(pod, {"metadata": {"finalizers": ["b", "a"]}, "spec": {"tolerations": [{"key": "y"}]}}, POD)
    assert out["spec"]["tolerations"] == [{"key": "y"}]
    assert out["metadata"]["finalizers"] == ["a", "b"]
    out = patch(out, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, POD)
    assert out["metadata"]["finalizers"] == ["b"]


def test_retain_keys_drops_the_other_strategy_fields():
    """kubectl apply changing a Deployment's strategy from RollingUpdate to Recreate."""
    dep = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    out = patch(dep, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}},
                DEPLOYMENT)
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_patch_replace_on_a_map_and_on_a_list():
    pod = {"metadata": {"labels": {"a": "1", "b": "2"}},
           "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}
    out = patch(pod, {"metadata": {"labels": {"$patch": "replace", "c": "3"}},
                      "spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "z"}]}}, POD)
    assert out["metadata"]["labels"] == {"c": "3"}
    assert out["spec"]["containers"] == [{"name": "c", "image": "z"}]


def test_a_merge_list_item_without_its_key_is_a_400():
    import pytest

    from api.errors import ApiError
    with pytest.raises(ApiError) as err:
        patch({"spec": {"containers": []}}, {"spec": {"containers": [{"image": "x"}]}}, POD)
    assert err.value.code == 400 and "'name'" in err.value.message
