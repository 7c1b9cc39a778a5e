"""What a kubelet (system:node:NAME) may do: the Node authorizer on a request's path (api/node_authorizer.py), then
NodeRestriction on the object it writes (api/node_restriction.py)."""
import pytest

from api.authentication import signed_in
from api.errors import ApiError
from api.node_authorizer import decide, node_user
from api.node_restriction import admit, admit_token, forbidden_label
from api.rbac import Attributes
from api.registry import lookup

N1 = signed_in(node_user("n1"), groups=("system:nodes",))
NODES = lookup("", "v1", "nodes")
LEASES = lookup("coordination.k8s.io", "v1", "leases")
POD = {"metadata": {"name": "web", "namespace": "shop", "uid": "u"},
       "spec": {"nodeName": "n1", "serviceAccountName": "web",
                "containers": [{"name": "c", "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "db"}}}]}],
                "volumes": [{"name": "v", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}}]}}


class Objects:
    """The two reads the Node authorizer makes, from a fixed list of pods."""

    def __init__(self, *pods):
        self.pods = list(pods)

    async def get(self, res, namespace, name, local=False):
        found = [p for p in self.pods if (p["metadata"]["namespace"], p["metadata"]["name"]) == (namespace, name)]
        if not found:
            raise ApiError(404, "not found")
        return found[0]

    async def list(self, res, namespace, local=False):
        return [p for p in self.pods if p["metadata"]["namespace"] == namespace], 1


def ask(verb, resource, name="", namespace="", subresource="", group="", user=N1):
    return Attributes(user.name, user.groups, verb, group, resource, subresource, namespace, name)


async def test_a_node_reads_its_own_things_and_writes_only_its_own():
    objects = Objects(POD, {**POD, "metadata": {**POD["metadata"], "name": "elsewhere"},
                            "spec": {**POD["spec"], "nodeName": "n2"}})
    assert await decide(ask("get", "nodes", "n2"), objects)  # reading any Node
    assert await decide(ask("create", "nodes"), objects)  # which Node: NodeRestriction's to check
    assert await decide(ask("patch", "nodes", "n1", subresource="status"), objects)
    assert not await decide(ask("delete", "nodes", "n2"), objects)
    assert not await decide(ask("update", "nodes", "n2"), objects)
    assert await decide(ask("update", "leases", "n1", "kube-node-lease", group="coordination.k8s.io"), objects)
    assert not await decide(ask("update", "leases", "n2", "kube-node-lease", group="coordination.k8s.io"), objects)
    assert not await decide(ask("create", "leases", namespace="kube-system", group="coordination.k8s.io"), objects)
    assert await decide(ask("update", "pods", "web", "shop", "status"), objects)
    assert not await decide(ask("update", "pods", "elsewhere", "shop", "status"), objects)
    assert not await decide(ask("create", "pods", namespace="shop"), objects)


async def test_a_node_reads_only_the_secrets_configmaps_and_tokens_its_pods_use():
    objects = Objects(POD)
    assert await decide(ask("get", "secrets", "db", "shop"), objects)
    assert not await decide(ask("get", "secrets", "other", "shop"), objects)
    assert not await decide(ask("list", "secrets", namespace="shop"), objects)
    assert await decide(ask("get", "configmaps", "kube-root-ca.crt", "shop"), objects)
    assert await decide(ask("create", "serviceaccounts", "web", "shop", "token"), objects)
    assert not await decide(ask("create", "serviceaccounts", "default", "shop", "token"), objects)
    stranger = signed_in("system:node:n1")  # the name without the group is nobody's kubelet
    assert not await decide(ask("get", "secrets", "db", "shop", user=stranger), objects)


@pytest.mark.parametrize("key, refused", [
    ("kubernetes.io/hostname", False), ("node.kubernetes.io/instance-type", False), ("disk", False),
    ("example.com/gpu", False), ("kubelet.kubernetes.io/x", False), ("node-restriction.kubernetes.io/db", True),
    ("node-role.kubernetes.io/control-plane", True), ("sub.k8s.io/x", True)])
def test_labels_a_node_may_not_give_itself(key, refused):
    assert forbidden_label(key) is refused


def node(name, **labels):
    return {"metadata": {"name": name, "labels": labels}}


def test_node_restriction_on_nodes_and_leases():
    admit(N1, NODES, None, node("n1", disk="ssd"))
    with pytest.raises(ApiError, match='is not allowed to modify node "n2"'):
        admit(N1, NODES, None, node("n2"))
    with pytest.raises(ApiError, match="node-restriction.kubernetes.io/db"):
        admit(N1, NODES, node("n1"), node("n1", **{"node-restriction.kubernetes.io/db": "yes"}))
    admit(N1, NODES, node("n1", **{"node-role.kubernetes.io/x": ""}),  # an admin's label, kept as it was
          node("n1", **{"node-role.kubernetes.io/x": "", "disk": "ssd"}))
    with pytest.raises(ApiError, match="ownerReferences"):
        admit(N1, NODES, node("n1"), {"metadata": {"name": "n1", "ownerReferences": [{"uid": "x"}]}})
    admit(N1, LEASES, None, {"metadata": {"name": "n1", "namespace": "kube-node-lease"}})
    with pytest.raises(ApiError, match="its own lease") as refused:
        admit(N1, LEASES, None, {"metadata": {"name": "n2", "namespace": "kube-node-lease"}})
    assert refused.value.code == 403
    admit(signed_in("admin", groups=("system:masters",)), NODES, None, node("n2"))  # not a node: not restricted
    admit(None, NODES, None, node("n2"))  # the server's own writes


def test_a_node_asks_tokens_only_bound_to_its_own_pods():
    admit_token(N1, "web", POD)
    with pytest.raises(ApiError, match="bound to a pod"):
        admit_token(N1, "web", None)
    with pytest.raises(ApiError, match="not pod"):
        admit_token(N1, "web", {**POD, "spec": {**POD["spec"], "nodeName": "n2"}})
    with pytest.raises(ApiError, match="not pod"):
        admit_token(N1, "default", POD)
