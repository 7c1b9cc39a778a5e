"""A container's environment and its volumes as files (node/env.py, node/volumes.py), as Kubernetes builds them:
env, $(VAR) expansion, valueFrom (configMapKeyRef, secretKeyRef, fieldRef), envFrom with prefixes, the Service
variables; volumes from ConfigMaps, Secrets (with items and modes), the downward API, mounted as symlinks without
root; hostPath only under the node's allowed prefixes."""
import base64
import os

import pytest

from node import volumes
from node.env import command_line, container_env, expand, service_env
from node.host_paths import HostPaths
from node.pod_config import PodConfig, references
from node.runtime import ContainerError
from node.sandbox import Sandboxes

POD = {"metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "labels": {"app": "web"}},
       "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "x"}]}}
CM = {"metadata": {"name": "cfg", "namespace": "shop"}, "data": {"color": "blue", "size": "9"},
      "binaryData": {"blob": base64.b64encode(b"\x00\x01").decode()}}
SECRET = {"metadata": {"name": "creds", "namespace": "shop"}, "data": {"pw": base64.b64encode(b"hunter2").decode()}}
CONFIG = PodConfig(configmaps={"cfg": CM}, secrets={"creds": SECRET})
NO_HOST_PATHS = HostPaths([])


def env_of(container: dict, config: PodConfig = CONFIG) -> dict:
    return container_env(POD, {"name": "app", **container}, config, pod_ip="127.1.1.5", host_ip="127.1.1.1")


def test_values_refs_and_expansion():
    env = env_of({"env": [
        {"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-$(MISSING)-$$(A)"},
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}},
        {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]})
    assert env["B"] == "x-$(MISSING)-$(A)"
    assert (env["COLOR"], env["PW"], env["ME"], env["APP"], env["NODE"]) == ("blue", "hunter2", "web-1", "web", "n1")
    assert env["IP"] == env["POD_IP"] == "127.1.1.5" and env["HOSTNAME"] == "web-1"


def test_env_from_with_prefix_and_env_winning():
    env = env_of({"envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}],
                  "env": [{"name": "pw", "value": "override"}]})
    assert env["CFG_color"] == "blue" and env["CFG_size"] == "9" and env["pw"] == "override"


def test_missing_objects_and_keys():
    with pytest.raises(ContainerError, match='configmap "nope" not found') as err:
        env_of({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]},
               PodConfig(configmaps={"nope": None}))
    assert err.value.reason == "CreateContainerConfigError"
    with pytest.raises(ContainerError, match="couldn't find key absent in secret shop/creds"):
        env_of({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "absent"}}}]})
    optional = env_of({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "absent",
                                                                               "optional": True}}}]})
    assert "X" not in optional


def test_service_variables_as_kubernetes_injects_them():
    svc = {"metadata": {"name": "redis-main"}, "spec": {"clusterIP": "127.96.0.7", "ports": [
        {"name": "tcp-redis", "port": 6379, "protocol": "TCP"}]}}
    headless = {"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}
    env = service_env([svc, headless])
    assert env["REDIS_MAIN_SERVICE_HOST"] == "127.96.0.7" and env["REDIS_MAIN_SERVICE_PORT"] == "6379"
    assert env["REDIS_MAIN_SERVICE_PORT_TCP_REDIS"] == "6379"
    assert env["REDIS_MAIN_PORT"] == "tcp://127.96.0.7:6379"
    assert env["REDIS_MAIN_PORT_6379_TCP_ADDR"] == "127.96.0.7" and env["REDIS_MAIN_PORT_6379_TCP_PROTO"] == "tcp"
    assert not any(k.startswith("H_") for k in env)
    no_links = {**POD, "spec": {**POD["spec"], "enableServiceLinks": False}}
    assert "REDIS_MAIN_SERVICE_HOST" not in container_env(no_links, {"name": "app"}, PodConfig(services=[svc]),
                                                          pod_ip="", host_ip="")


def test_command_line():
    assert command_line({"command": ["sh", "-c"], "args": ["echo $(A)"]}, {"A": "1"}) == ["sh", "-c", "echo 1"]
    assert command_line({"args": ["python3", "app.py"]}, {}) == ["python3", "app.py"]
    assert command_line({}, {}) == ["sleep", "infinity"]  # image-only containers idle
    web = command_line({"image": "docker.io/library/nginx:1.25", "ports": [{"containerPort": 8080}]}, {})
    assert web[-1] == "8080" and "Welcome to nginx!" in web[-2]  # an nginx stand-in on its declared port


def test_references_name_every_object_a_pod_needs():
    pod = {"spec": {"containers": [{"env": [{"name": "a", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}}],
                                    "envFrom": [{"configMapRef": {"name": "c1"}}]}],
                    "volumes": [{"name": "v", "configMap": {"name": "c2"}}, {"name": "w", "secret": {"secretName": "s2"}}]}}
    assert references(pod) == ({"c1", "c2"}, {"s1", "s2"})


def test_volumes_are_files_and_mounts_are_symlinks(tmp_path):
    sandbox = Sandboxes(str(tmp_path), "127.1.1.0/24").open(POD)
    assert sandbox.ip == "127.1.1.2"
    pod = {**POD, "spec": {**POD["spec"], "volumes": [
        {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "color", "path": "sub/colour"}]}},
        {"name": "all", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        {"name": "info", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"name": "scratch", "emptyDir": {}}]}}
    volumes.materialize(sandbox, pod, CONFIG, NO_HOST_PATHS.resolve)
    container = {"name": "app", "volumeMounts": [
        {"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "sec", "mountPath": "/run/secrets/app"},
        {"name": "info", "mountPath": "/etc/podinfo"}, {"name": "all", "mountPath": "/etc/size", "subPath": "size"},
        {"name": "scratch", "mountPath": "/tmp/work"}]}
    found = volumes.mounts(sandbox, pod, container, NO_HOST_PATHS.resolve)
    assert [(m.target, m.read_only) for m in found] == [("/etc/cfg", True), ("/run/secrets/app", True),
                                                        ("/etc/podinfo", True), ("/etc/size", True),
                                                        ("/tmp/work", False)]
    workdir = volumes.link(sandbox, container, found)
    root = sandbox.root_dir("app")
    assert workdir == root
    read = lambda p: open(os.path.join(root, p), "rb").read()  # noqa: E731
    assert read("etc/cfg/sub/colour") == b"blue"
    assert read("run/secrets/app/pw") == b"hunter2"
    assert oct(os.stat(os.path.join(root, "run/secrets/app/pw")).st_mode & 0o777) == "0o400"
    assert read("etc/podinfo/name") == b"web-1" and read("etc/size") == b"9"
    assert os.path.isdir(os.path.join(root, "tmp/work"))
    assert os.path.islink(os.path.join(root, "etc/cfg"))
    assert open(os.path.join(sandbox.dir, "volumes", "all", "blob"), "rb").read() == b"\x00\x01"


def test_a_mount_path_cannot_leave_the_sandbox(tmp_path):
    sandbox = Sandboxes(str(tmp_path), "127.1.1.0/24").open(POD)
    pod = {**POD, "spec": {"volumes": [{"name": "x", "emptyDir": {}}]}}
    with pytest.raises(ContainerError, match="leaves the volume"):
        volumes.mounts(sandbox, pod, {"name": "app", "volumeMounts": [{"name": "x", "mountPath": "/a",
                                                                       "subPath": "../../.."}]}, NO_HOST_PATHS.resolve)
    with pytest.raises(ContainerError, match="no volume of that name"):
        volumes.mounts(sandbox, pod, {"name": "app", "volumeMounts": [{"name": "y", "mountPath": "/a"}]},
                       NO_HOST_PATHS.resolve)
    with pytest.raises(ContainerError, match="not found"):
        volumes.materialize(sandbox, {**POD, "spec": {"volumes": [{"name": "v", "configMap": {"name": "gone"}}]}},
                            PodConfig(configmaps={"gone": None}), NO_HOST_PATHS.resolve)


def test_host_paths_only_under_the_allowed_prefixes(tmp_path):
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "database").mkdir()
    (tmp_path / "data" / "out").symlink_to("/etc")
    allowed = HostPaths([str(tmp_path / "data")])
    assert allowed.resolve(str(tmp_path / "data" / "sub")) == str(tmp_path / "data" / "sub")
    assert allowed.resolve(str(tmp_path / "data")) == str(tmp_path / "data")
    for refused in (tmp_path / "database", tmp_path / "data" / "out", tmp_path / "data" / ".." / "database"):
        with pytest.raises(ContainerError, match="not allowed on this node: it allows hostPath volumes under"):
            allowed.resolve(str(refused))
    with pytest.raises(ContainerError, match="under none"):
        NO_HOST_PATHS.resolve("/srv")
    with pytest.raises(ValueError, match="not an absolute path"):
        HostPaths(["relative"])
    sandbox = Sandboxes(str(tmp_path / "node"), "127.1.1.0/24").open(POD)
    pod = {**POD, "spec": {"volumes": [{"name": "h", "hostPath": {"path": str(tmp_path / "data")}}]}}
    found = volumes.mounts(sandbox, pod, {"name": "app", "volumeMounts": [
        {"name": "h", "mountPath": "/srv", "subPath": "sub"}]}, allowed.resolve)
    assert found == [volumes.Mount("/", str(tmp_path / "data" / "sub")[1:], "/srv", False)]


def test_pod_ips_are_kept_across_a_kubelet_restart(tmp_path):
    first = Sandboxes(str(tmp_path), "127.1.1.0/24")
    a = first.open(POD)
    b = first.open({"metadata": {"name": "b", "namespace": "shop", "uid": "u2"}})
    again = Sandboxes(str(tmp_path), "127.1.1.0/24")
    assert again.open(POD).ip == a.ip
    c = again.open({"metadata": {"name": "c", "namespace": "shop", "uid": "u3"}})
    assert c.ip not in (a.ip, b.ip, "127.1.1.1")
    again.remove("u2")
    assert again.open({"metadata": {"name": "d", "namespace": "shop", "uid": "u4"}}).ip == b.ip


def test_expand_leaves_unknown_references():
    assert expand("$(A)$(B)", {"A": "1"}) == "1$(B)"


def test_a_python_images_python_is_the_nodes_python3_when_the_node_has_no_python(monkeypatch):
    from node import images

    monkeypatch.setattr(images.shutil, "which", lambda name, path=None: None if name == "python" else f"/usr/bin/{name}")
    assert images.provided({"image": "python:3.12"}, ["python", "-u", "x.py"]) == ["python3", "-u", "x.py"]
    assert images.provided({"image": "busybox"}, ["python", "x.py"]) == ["python", "x.py"]
    monkeypatch.setattr(images.shutil, "which", lambda name, path=None: f"/usr/bin/{name}")
    assert images.provided({"image": "python"}, ["python", "x.py"]) == ["python", "x.py"]
