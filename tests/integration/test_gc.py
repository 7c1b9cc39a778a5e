"""The garbage collector on a real master (Kubernetes' documented cascading deletion): Background (kubectl's
default) removes the owner at once and its dependents after; an object made again under the owner's name is a
different owner; Foreground keeps the owner (foregroundDeletion finalizer) until the dependents that block it
are gone; Orphan removes the owner and leaves the dependents without the reference. Owners are ConfigMaps so the
order of events is in the test's hands (a dependent held by a finalizer of the test's), and a Deployment shows
the whole chain Deployment -> ReplicaSet -> Pods deleted by `kubectl delete`."""
from __future__ import annotations

from api.client import ApiClient, path, resource
from tests.integration.cluster import eventually
from tests.integration.kube import Kubectl, maybe_get, namespace

HOLD = "example.com/hold"


async def configmap(api: ApiClient, ns: str, name: str, *owners: dict, block: bool = True,
                    finalizers: list[str] | None = None) -> dict:
    meta: dict = {"name": name, "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"], "uid": o["metadata"]["uid"],
         "blockOwnerDeletion": block} for o in owners]}
    if finalizers:
        meta["finalizers"] = finalizers
    return await api.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}, ns)


async def delete(api: ApiClient, ns: str, name: str, policy: str) -> None:
    await api.request("DELETE", path(resource("configmaps"), ns, name),
                      body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy})


async def names(api: ApiClient, ns: str) -> set[str]:
    items, _ = await api.list("configmaps", ns)
    return {i["metadata"]["name"] for i in items if i["metadata"]["name"] != "kube-root-ca.crt"}


async def gone(api: ApiClient, ns: str, name: str) -> bool:
    return await maybe_get(api, "configmaps", name, ns) is None


async def test_background_deletes_dependents_whose_owners_are_all_gone(cp):
    """Background: the owner goes at once; a dependent with another owner still there only loses the reference."""
    async with namespace(cp, "gc") as (api, ns):
        owner = await configmap(api, ns, "owner")
        other = await configmap(api, ns, "other")
        await configmap(api, ns, "child", owner)
        await configmap(api, ns, "grandchild", await api.get("configmaps", "child", ns))
        shared = await configmap(api, ns, "shared", owner, other)
        await delete(api, ns, "owner", "Background")
        await eventually(lambda: _equals(names(api, ns), {"other", "shared"}), timeout=30,
                         what="child and grandchild collected")
        refs = (await api.get("configmaps", "shared", ns))["metadata"]["ownerReferences"]
        assert [r["uid"] for r in refs] == [other["metadata"]["uid"]]
        assert shared["metadata"]["uid"] == (await api.get("configmaps", "shared", ns))["metadata"]["uid"]


async def test_an_owner_made_again_under_the_same_name_is_a_different_owner(cp):
    async with namespace(cp, "gc") as (api, ns):
        old = await configmap(api, ns, "owner")
        await api.delete("configmaps", "owner", ns)
        await configmap(api, ns, "owner")  # same name, new uid
        await configmap(api, ns, "orphan-of-old", old)
        await eventually(lambda: gone(api, ns, "orphan-of-old"), timeout=30, what="the old owner's dependent gone")
        assert await names(api, ns) == {"owner"}


async def test_foreground_keeps_the_owner_until_its_blocking_dependents_are_gone(cp):
    async with namespace(cp, "gc") as (api, ns):
        owner = await configmap(api, ns, "owner")
        await configmap(api, ns, "held", owner, finalizers=[HOLD])
        await configmap(api, ns, "plain", owner)
        await delete(api, ns, "owner", "Foreground")
        marked = await api.get("configmaps", "owner", ns)
        assert marked["metadata"]["deletionTimestamp"] and "foregroundDeletion" in marked["metadata"]["finalizers"]

        async def held_marked() -> bool:
            held = await api.get("configmaps", "held", ns)
            return bool(held["metadata"].get("deletionTimestamp")) and await gone(api, ns, "plain")
        await eventually(held_marked, timeout=30, what="the dependents deleted")
        assert not await gone(api, ns, "owner")  # still waiting for "held"
        await api.patch("configmaps", "held", {"metadata": {"finalizers": None}}, ns)
        await eventually(lambda: gone(api, ns, "owner"), timeout=30, what="the owner gone after its dependents")


async def test_orphan_leaves_the_dependents_without_the_reference(cp):
    async with namespace(cp, "gc") as (api, ns):
        owner = await configmap(api, ns, "owner")
        other = await configmap(api, ns, "other")
        await configmap(api, ns, "a", owner)
        await configmap(api, ns, "b", owner, other)
        await delete(api, ns, "owner", "Orphan")
        await eventually(lambda: gone(api, ns, "owner"), timeout=30, what="the owner gone")
        a, b = await api.get("configmaps", "a", ns), await api.get("configmaps", "b", ns)
        assert not a["metadata"].get("ownerReferences")
        assert [r["uid"] for r in b["metadata"]["ownerReferences"]] == [other["metadata"]["uid"]]


async def test_kubectl_delete_deployment_removes_its_replicasets_and_pods(cp, tmp_path):
    kubectl = Kubectl(tmp_path, cp)
    async with namespace(cp, "gc") as (api, ns):
        await api.create("deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}, ns)

        async def count(kind: str) -> int:
            return len((await api.list(kind, ns))[0])
        await eventually(lambda: _equals(count("pods"), 3), timeout=30, what="3 pods")
        kubectl("delete", "deployment", "web", "-n", ns)
        await eventually(lambda: _equals(count("replicasets"), 0), timeout=30, what="the ReplicaSet collected")
        await eventually(lambda: _equals(count("pods"), 0), timeout=30, what="the pods collected")


async def _equals(value, wanted) -> bool:
    return (await value) == wanted
