"""Who may do what, with the real kubectl against masters run with --authorization-mode Node,RBAC: identities from
the token file and from service-account tokens (TokenRequest), RBAC bindings, the node authorizer, `kubectl auth
whoami` and `can-i`, impersonation (kubectl --as), and namespaces that may not be deleted."""
import base64
import json
import os
import secrets

import pytest

from api.authentication import token_line
from tests.integration.cluster import Cluster
from tests.integration.kube import Kubectl, wait_until

NODE_RULES = ("--authorization-mode", "Node,RBAC")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("rbac") / "cluster"), 3, NODE_RULES)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def kube(cluster, tmp_path_factory):
    k = Kubectl(tmp_path_factory.mktemp("home"), cluster)
    k("create", "namespace", "dev")
    k("-n", "dev", "create", "serviceaccount", "ci")
    k("-n", "dev", "create", "rolebinding", "ci-view", "--clusterrole", "view", "--serviceaccount", "dev:ci")
    k("-n", "dev", "create", "secret", "generic", "s", "--from-literal", "k=v")
    return k


def can(kube, token, *args) -> str:
    out = kube("--token", token, "auth", "can-i", *args, check=False)
    return out.stdout.strip()


def test_who_am_i_as_the_admin_and_as_a_service_account(kube):
    me = kube("auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}")
    assert me.stdout.startswith("admin ") and "system:masters" in me.stdout
    token = kube("-n", "dev", "create", "token", "ci").stdout.strip()
    sa = kube("--token", token, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert sa.stdout == "system:serviceaccount:dev:ci"


def test_a_service_account_bound_to_view_reads_its_namespace_and_nothing_more(kube):
    token = kube("-n", "dev", "create", "token", "ci").stdout.strip()
    assert kube("--token", token, "-n", "dev", "get", "pods", check=False).returncode == 0
    refused = kube("--token", token, "-n", "dev", "get", "secrets", check=False)
    assert refused.returncode == 1 and 'secrets is forbidden: User "system:serviceaccount:dev:ci"' in refused.stderr
    assert kube("--token", token, "-n", "default", "get", "pods", check=False).returncode == 1
    assert can(kube, token, "list", "pods", "-n", "dev") == "yes"
    assert can(kube, token, "get", "secrets", "-n", "dev") == "no"
    assert can(kube, token, "create", "deployments", "-n", "dev") == "no"
    proxied = kube("--token", token, "get", "--raw", "/api/v1/namespaces/dev/pods/web:80/proxy/", check=False)
    assert proxied.returncode == 1
    assert 'pods "web:80" is forbidden: User "system:serviceaccount:dev:ci" cannot get resource "pods/proxy"' \
        in proxied.stderr


def test_can_i_list_shows_what_a_service_account_may_do_and_all_for_the_admin(kube):
    """kubectl auth can-i --list asks a SelfSubjectRulesReview (in protobuf): the view role's rules in dev, none
    of them on secrets; the admin may do everything; a node's list is marked incomplete, as upstream's."""
    token = kube("-n", "dev", "create", "token", "ci").stdout.strip()
    rows = [line.split() for line in kube("--token", token, "-n", "dev", "auth", "can-i", "--list").stdout.splitlines()]
    pods = next(row for row in rows if row[0] == "pods")
    assert pods[-3:] == ["[get", "list", "watch]"]
    assert not any(row[0].startswith("secrets") for row in rows)
    assert kube("--token", token, "-n", "default", "auth", "can-i", "--list").stdout.count("pods ") == 0
    assert kube("auth", "can-i", "--list").stdout.splitlines()[1].split() == ["*.*", "[]", "[]", "[*]"]
    node = kube("--as", "system:node:n1", "--as-group", "system:nodes", "auth", "can-i", "--list")
    assert "the list may be incomplete: node authorizer does not support user rule resolution" in node.stderr


def test_impersonation_with_kubectl_as(kube):
    """kubectl --as / --as-group: the admin acts as someone else and gets exactly their rights; someone without
    the impersonate verb cannot."""
    as_ci = kube("--as", "system:serviceaccount:dev:ci", "auth", "whoami", "-o",
                 "jsonpath={.status.userInfo.username} {.status.userInfo.groups}").stdout
    assert as_ci.startswith("system:serviceaccount:dev:ci ") and "system:serviceaccounts:dev" in as_ci
    refused = kube("--as", "system:serviceaccount:dev:ci", "-n", "dev", "get", "secrets", check=False)
    assert refused.returncode == 1 and 'User "system:serviceaccount:dev:ci" cannot list' in refused.stderr
    assert kube("--as", "nobody", "--as-group", "system:masters", "-n", "dev", "get", "secrets").returncode == 0
    token = kube("-n", "dev", "create", "token", "ci").stdout.strip()
    escalation = kube("--token", token, "--as", "admin", "get", "secrets", "-A", check=False)
    assert escalation.returncode == 1
    assert 'users "admin" is forbidden: User "system:serviceaccount:dev:ci" cannot impersonate resource "users"' \
        in escalation.stderr


def test_a_token_dies_with_its_service_account(kube):
    kube("-n", "dev", "create", "serviceaccount", "temp")
    token = kube("-n", "dev", "create", "token", "temp").stdout.strip()
    assert kube("--token", token, "auth", "whoami", check=False).returncode == 0
    kube("-n", "dev", "delete", "serviceaccount", "temp")
    assert "Unauthorized" in kube("--token", token, "auth", "whoami", check=False).stderr


def test_the_protected_namespaces_cannot_be_deleted_even_by_the_admin(kube):
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        out = kube("delete", "namespace", name, check=False)
        assert out.returncode == 1 and "may not be deleted" in out.stderr
    assert kube("get", "namespace", "kube-system").returncode == 0


def test_a_node_writes_its_own_node_and_reads_only_the_secrets_its_pods_use(cluster, kube):
    token = secrets.token_urlsafe(24)
    with open(os.path.join(cluster.state_dir, "tokens.csv"), "a") as f:  # the masters read the file again
        f.write(token_line(token, "system:node:n1", ("system:nodes",)))
    for name in ("n1", "n2"):
        kube("create", "-f", "-", stdin=f'{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{name}"}}}}')

    def node(*args, **kw):
        return kube("--token", token, *args, **kw)

    wait_until(lambda: node("label", "node", "n1", "seen=yes", check=False).returncode == 0, "n1 labelling itself")
    assert node("label", "node", "n2", "seen=yes", check=False).returncode == 1  # not its own Node
    assert node("delete", "node", "n2", check=False).returncode == 1
    assert node("-n", "dev", "get", "secret", "s", check=False).returncode == 1  # no pod of n1 uses it
    assert node("get", "secrets", "-A", check=False).returncode == 1
    kube("-n", "dev", "create", "-f", "-", stdin='{"apiVersion":"v1","kind":"Pod","metadata":{"name":"uses-s"},'
         '"spec":{"nodeName":"n1","containers":[{"name":"c","image":"i","env":[{"name":"K","valueFrom":'
         '{"secretKeyRef":{"name":"s","key":"k"}}}]}]}}')
    got = node("-n", "dev", "get", "secret", "s", "-o", "jsonpath={.data.k}")
    assert base64.b64decode(got.stdout) == b"v"


def test_the_kubernetes_service_leads_to_every_master(cluster, kube):
    """ClusterIP the service range's first address; Endpoints every master's API address, kept by the masters."""
    spec = kube("get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP} {.spec.ports[0].name} "
                                                      "{.spec.ports[0].port}")
    assert spec.stdout == "127.96.0.1 https 6443"
    masters = sorted(m["api"].removeprefix("https://") for m in cluster.info["masters"])

    def endpoints() -> bool:
        out = kube("get", "endpoints", "kubernetes", "-o", "json").stdout
        found = sorted(f"{a['ip']}:{p['port']}" for s in json.loads(out).get("subsets") or []
                       for a in s["addresses"] for p in s["ports"])
        return found == masters
    wait_until(endpoints, "the kubernetes Endpoints naming every master", 30)
