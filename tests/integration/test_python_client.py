"""The official Python `kubernetes` client against three masters: typed calls, watch, create_from_yaml."""
import time

import pytest

from raftkube import kubeconfig
from tests.integration.cluster import Cluster

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config, utils, watch  # noqa: E402


@pytest.fixture(scope="module")
def k8s(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("pyclient") / "cluster"), 3)
    try:
        path = kubeconfig.write(str(tmp_path_factory.mktemp("pyhome") / "kubeconfig"), c.master("m2")["api"],
                                c.token, c.ca)
        api = config.new_client_from_config(config_file=path)
        core = client.CoreV1Api(api)
        deadline = time.monotonic() + 30  # the default namespaces appear as the masters start
        while "default" not in [n.metadata.name for n in core.list_namespace().items]:
            assert time.monotonic() < deadline, "no default namespace"
            time.sleep(0.05)
        yield api
    finally:
        c.stop()


def test_typed_calls_watch_and_create_from_yaml(k8s):
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="py", labels={"a": "b"}), data={"k": "v"}))
    core.patch_namespaced_config_map("py", "default", {"data": {"k": "patched"}})
    assert core.read_namespaced_config_map("py", "default").data == {"k": "patched"}
    assert [c.metadata.name for c in core.list_namespaced_config_map("default", label_selector="a=b").items] == ["py"]
    events = [(e["type"], e["object"].metadata.name)
              for e in watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=1)]
    assert ("ADDED", "py") in events
    core.delete_namespaced_config_map("py", "default")
    utils.create_from_yaml(k8s, yaml_objects=[{
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fromyaml"},
        "spec": {"selector": {"matchLabels": {"app": "y"}},
                 "template": {"metadata": {"labels": {"app": "y"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}], namespace="default")
    d = apps.read_namespaced_deployment("fromyaml", "default")
    assert d.spec.replicas == 1 and d.spec.strategy.rolling_update.max_surge == "25%"
    apps.patch_namespaced_deployment_scale("fromyaml", "default", {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment_scale("fromyaml", "default").spec.replicas == 4
