"""The namespace controller on a real master (Kubernetes' documented namespace deletion): `kubectl delete
namespace` marks it Terminating, the controller deletes everything in it and then finalizes it, and kubectl's wait
ends when it is gone. A pod bound to a Ready node waits for its kubelet's confirmation (played by the test); one
bound to a node whose kubelet is not Ready is deleted with grace 0."""
from __future__ import annotations

import asyncio

import pytest

from api.client import NotFound
from tests.integration.cluster import eventually
from tests.integration.kube import Kubectl, make_node


def pod(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}}


async def test_kubectl_delete_namespace_empties_and_removes_it(cp, tmp_path):
    kubectl = Kubectl(tmp_path, cp)
    async with cp.api() as api:
        await make_node(api, "alive")
        await make_node(api, "dead", ready=False)
        await api.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
        await api.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}},
                         "doomed")
        await api.create("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
                                      "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}, "doomed")
        await api.create("deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}],
                                           "nodeSelector": {"kubernetes.io/hostname": "nowhere"}}}}}, "doomed")
        await api.create("pods", pod("on-alive", "alive"), "doomed")
        await api.create("pods", pod("on-dead", "dead"), "doomed")
        await eventually(lambda: _has(api, "endpoints", "svc"), timeout=30, what="the Service's Endpoints")

        deleting = asyncio.get_running_loop().run_in_executor(None, lambda: kubectl(
            "delete", "namespace", "doomed", "--timeout=40s", check=False))

        async def only_the_alive_pod_left() -> bool:
            ns = await api.get("namespaces", "doomed")
            left = {kind: [i["metadata"]["name"] for i in (await api.list(kind, "doomed"))[0]]
                    for kind in ("pods", "configmaps", "services", "endpoints", "deployments", "replicasets")}
            return ns["status"]["phase"] == "Terminating" and left == {
                "pods": ["on-alive"], "configmaps": [], "services": [], "endpoints": [], "deployments": [],
                "replicasets": []}
        await eventually(only_the_alive_pod_left, timeout=30, what="everything but the alive node's pod gone")
        async def says_pods_remain() -> bool:
            conditions = (await api.get("namespaces", "doomed"))["status"].get("conditions") or []
            return any(c["type"] == "NamespaceContentRemaining" and "pods" in c["message"] for c in conditions)
        await eventually(says_pods_remain, timeout=15, what="the NamespaceContentRemaining condition naming pods")
        marked = await api.get("pods", "on-alive", "doomed")
        assert marked["metadata"]["deletionTimestamp"]
        await api.delete("pods", "on-alive", "doomed", grace_period_seconds=0)  # its kubelet confirms

        out = await deleting
        assert out.returncode == 0, out.stderr
        assert 'namespace "doomed" deleted' in out.stdout
        with pytest.raises(NotFound):
            await api.get("namespaces", "doomed")


async def _has(api, kind: str, name: str) -> bool:
    try:
        await api.get(kind, name, "doomed")
        return True
    except NotFound:
        return False


async def test_every_namespace_gets_its_default_service_account_and_the_root_ca(cp):
    """The service account controller and the root CA publisher: what in-cluster clients find in any namespace
    (a `default` ServiceAccount, which comes back when deleted; kube-root-ca.crt with the cluster CA)."""
    with open(cp.info["ca"]) as f:
        ca = f.read()
    async with cp.api() as api:
        await api.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fresh"}})

        async def present(kind: str, name: str) -> bool:
            try:
                await api.get(kind, name, "fresh")
                return True
            except NotFound:
                return False
        await eventually(lambda: present("serviceaccounts", "default"), timeout=30, what="the default account")
        await eventually(lambda: present("configmaps", "kube-root-ca.crt"), timeout=30, what="kube-root-ca.crt")
        assert (await api.get("configmaps", "kube-root-ca.crt", "fresh"))["data"] == {"ca.crt": ca}
        first = (await api.get("serviceaccounts", "default", "fresh"))["metadata"]["uid"]
        await api.delete("serviceaccounts", "default", "fresh")

        async def made_again() -> bool:
            try:
                return (await api.get("serviceaccounts", "default", "fresh"))["metadata"]["uid"] != first
            except NotFound:
                return False
        await eventually(made_again, timeout=30, what="the default account made again")
