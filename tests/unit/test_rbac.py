"""RBAC as Kubernetes evaluates it, with the cluster's bootstrap roles: bindings grant, nothing denies."""
from api import bootstrap_policy
from api.rbac import Attributes, Policy, allowed, forbidden_message, rules_for
from api.reviews import rules_status


def policy(*role_bindings) -> Policy:
    return Policy(cluster_roles={r["metadata"]["name"]: r for r in bootstrap_policy.cluster_roles()},
                  cluster_role_bindings=bootstrap_policy.cluster_role_bindings(), role_bindings=list(role_bindings))


def binding(namespace, role, subject, kind="ClusterRole"):
    return {"metadata": {"name": f"{role}-binding", "namespace": namespace},
            "roleRef": {"kind": kind, "name": role}, "subjects": [subject]}


def ask(user="alice", groups=("system:authenticated",), **kw) -> Attributes:
    return Attributes(user=user, groups=tuple(groups), **kw)


ALICE_VIEWS_DEV = binding("dev", "view", {"kind": "User", "name": "alice"})


def test_system_masters_may_do_anything_through_cluster_admin():
    a = ask("root", ("system:masters", "system:authenticated"), verb="delete", resource="nodes", name="n1")
    assert allowed(a, policy()) == "ClusterRoleBinding cluster-admin"


def test_a_viewer_reads_its_namespace_but_no_secrets_and_nothing_elsewhere():
    p = policy(ALICE_VIEWS_DEV)
    assert allowed(ask(verb="list", resource="pods", namespace="dev"), p)
    assert allowed(ask(verb="get", resource="deployments", api_group="apps", namespace="dev", name="web"), p)
    assert not allowed(ask(verb="get", resource="secrets", namespace="dev", name="s"), p)
    assert not allowed(ask(verb="list", resource="pods", namespace="prod"), p)
    assert not allowed(ask(verb="create", resource="pods", namespace="dev"), p)


def test_an_editor_bound_as_a_service_account_writes_workloads_and_reads_secrets():
    p = policy(binding("dev", "edit", {"kind": "ServiceAccount", "name": "ci", "namespace": "dev"}))
    sa = "system:serviceaccount:dev:ci"
    assert allowed(ask(sa, verb="create", resource="deployments", api_group="apps", namespace="dev"), p)
    assert allowed(ask(sa, verb="get", resource="secrets", namespace="dev", name="s"), p)
    assert not allowed(ask(sa, verb="create", resource="rolebindings", api_group="rbac.authorization.k8s.io",
                           namespace="dev"), p)


def test_resource_names_and_subresources_narrow_a_rule():
    sched = ask("system:kube-scheduler", verb="update", resource="leases", api_group="coordination.k8s.io",
                namespace="kube-system")
    assert allowed(Attributes(**{**sched.__dict__, "name": "kube-scheduler"}), policy())
    assert not allowed(Attributes(**{**sched.__dict__, "name": "kube-controller-manager"}), policy())
    assert allowed(ask("system:kube-scheduler", verb="create", resource="pods", subresource="binding",
                       namespace="dev", name="p"), policy())
    assert not allowed(ask("system:kube-scheduler", verb="create", resource="pods", namespace="dev"), policy())


def test_every_signed_in_user_may_discover_and_ask_what_it_may_do():
    assert allowed(ask(verb="get", path="/apis/apps/v1"), policy())
    assert not allowed(ask(verb="get", path="/metrics"), policy())
    assert allowed(ask(verb="create", resource="selfsubjectaccessreviews", api_group="authorization.k8s.io"),
                   policy())


def test_the_rules_listed_are_those_the_user_is_allowed_by_in_that_namespace():
    """SelfSubjectRulesReview (kubectl auth can-i --list): alice's view role in dev, with what everyone has."""
    in_dev = rules_status(rules_for("alice", ("system:authenticated",), "dev", policy(ALICE_VIEWS_DEV)), "")
    pods = [r for r in in_dev["resourceRules"] if "pods" in r["resources"] and r["apiGroups"] == [""]]
    assert pods and all(set(r["verbs"]) <= {"get", "list", "watch"} for r in pods)
    assert not any("secrets" in r["resources"] for r in in_dev["resourceRules"])
    urls = {u for r in in_dev["nonResourceRules"] for u in r["nonResourceURLs"]}
    assert {"/apis/*", "/readyz", "/version"} <= urls and in_dev["incomplete"] is False
    elsewhere = rules_status(rules_for("alice", ("system:authenticated",), "prod", policy(ALICE_VIEWS_DEV)), "")
    assert not any("pods" in r["resources"] for r in elsewhere["resourceRules"])
    assert rules_status([], "node authorizer does not support user rule resolution")["incomplete"] is True


def test_the_refusal_reads_as_kube_apiservers():
    assert forbidden_message(ask(verb="get", resource="pods", subresource="log", namespace="dev", name="web")) == (
        'pods "web" is forbidden: User "alice" cannot get resource "pods/log" in API group "" in the namespace "dev"')
    assert forbidden_message(ask(verb="list", resource="nodes")) == (
        'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope')


def controller(account: str, **kw) -> Attributes:
    return ask(f"system:serviceaccount:kube-system:{account}", ("system:serviceaccounts", "system:authenticated"),
               **kw)


def test_each_controller_may_do_its_job_and_read_no_secrets():
    p = policy()
    assert allowed(controller("replicaset-controller", verb="create", resource="pods", namespace="dev"), p)
    assert allowed(controller("node-controller", verb="create", resource="pods", subresource="eviction",
                              namespace="dev", name="p"), p)
    assert allowed(controller("root-ca-cert-publisher", verb="update", resource="configmaps", namespace="dev",
                              name="kube-root-ca.crt"), p)
    for name in bootstrap_policy.CONTROLLER_ROLES:
        if name not in ("namespace-controller", "generic-garbage-collector"):  # they delete and collect any kind
            assert not allowed(controller(name, verb="get", resource="secrets", namespace="dev", name="s"), p), name
    manager = ask("system:kube-controller-manager", verb="get", resource="secrets", namespace="dev", name="s")
    assert not allowed(manager, p)  # it watches every kind for the shared informers, and gets none
    assert allowed(ask("system:kube-controller-manager", verb="create", resource="serviceaccounts",
                       subresource="token", namespace="kube-system", name="job-controller"), p)
