"""The roles and bindings every cluster starts with, after Kubernetes' bootstrap policy (plugin/pkg/auth/
authorizer/rbac/bootstrappolicy): the user-facing roles, the discovery roles every signed-in user holds, and one
role per control-plane component and per controller (each controller acts as its own service account in
kube-system, as kube-controller-manager does with --use-service-account-credentials).

The masters create what is missing when they start (api/server.py `ensure_defaults`), and give a default
ClusterRole the rules it lacks (an older raftkube's); rules an administrator added are kept, and a role whose
autoupdate annotation is "false" is left alone.
"""
from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
ALL = ["*"]
CORE, APPS, BATCH, COORD = "", "apps", "batch", "coordination.k8s.io"
RBAC_GROUP = "rbac.authorization.k8s.io"
EVENTS = {"apiGroups": [CORE, "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]}
WORKLOADS = ["deployments", "deployments/scale", "replicasets", "replicasets/scale", "statefulsets",
             "statefulsets/scale", "daemonsets", "controllerrevisions"]
CORE_NAMESPACED = ["pods", "pods/log", "pods/status", "services", "services/status", "endpoints", "configmaps",
                   "serviceaccounts", "events", "replicationcontrollers", "replicationcontrollers/scale"]


def rule(groups: list[str], resources: list[str], verbs: list[str], names: list[str] | None = None) -> Obj:
    out: Obj = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        out["resourceNames"] = names
    return out


def urls(paths: list[str], verbs: list[str]) -> Obj:
    return {"nonResourceURLs": paths, "verbs": verbs}


def _viewer() -> list[Obj]:
    return [rule([CORE], CORE_NAMESPACED + ["namespaces"], READ), rule([APPS], WORKLOADS, READ),
            rule([BATCH], ["jobs", "jobs/status"], READ), rule(["policy"], ["poddisruptionbudgets"], READ),
            rule([COORD], ["leases"], READ)]


def _editor() -> list[Obj]:
    return [rule([CORE], CORE_NAMESPACED + ["secrets", "pods/eviction", "pods/exec", "pods/attach",
                                            "pods/portforward", "pods/proxy", "services/proxy",
                                            "serviceaccounts/token"], READ + WRITE),
            rule([CORE], ["namespaces"], READ), rule([APPS], WORKLOADS, READ + WRITE),
            rule([BATCH], ["jobs"], READ + WRITE), rule(["policy"], ["poddisruptionbudgets"], READ + WRITE),
            rule([COORD], ["leases"], READ + WRITE)]


CONTROLLER_ROLES: dict[str, list[Obj]] = {  # kube-system service account -> what it may do
    "replicaset-controller": [rule([APPS], ["replicasets"], READ + ["update"]),
                              rule([APPS], ["replicasets/status", "replicasets/finalizers"], ["update"]),
                              rule([CORE], ["pods"], ["list", "watch", "create", "delete", "patch"]), EVENTS],
    "replication-controller": [rule([CORE], ["replicationcontrollers"], READ + ["update"]),
                               rule([CORE], ["replicationcontrollers/status", "replicationcontrollers/finalizers"],
                                    ["update"]),
                               rule([CORE], ["pods"], ["list", "watch", "create", "delete", "patch"]), EVENTS],
    "deployment-controller": [rule([APPS], ["deployments"], READ + ["update"]),
                              rule([APPS], ["deployments/status", "deployments/finalizers"], ["update"]),
                              rule([APPS], ["replicasets"], READ + ["create", "update", "patch", "delete"]),
                              rule([CORE], ["pods"], READ + ["update"]), EVENTS],
    "statefulset-controller": [rule([APPS], ["statefulsets"], READ + ["update"]),
                               rule([APPS], ["statefulsets/status", "statefulsets/finalizers"], ["update"]),
                               rule([APPS], ["controllerrevisions"], READ + WRITE),
                               rule([CORE], ["pods"], READ + ["create", "delete", "update", "patch"]), EVENTS],
    "daemon-set-controller": [rule([APPS], ["daemonsets"], READ + ["update"]),
                              rule([APPS], ["daemonsets/status", "daemonsets/finalizers"], ["update"]),
                              rule([APPS], ["controllerrevisions"], READ + WRITE), rule([CORE], ["nodes"], READ),
                              rule([CORE], ["pods"], ["list", "watch", "create", "delete", "patch"]),
                              rule([CORE], ["pods/binding"], ["create"]), EVENTS],
    "job-controller": [rule([BATCH], ["jobs"], READ + ["update", "patch", "delete"]),
                       rule([BATCH], ["jobs/status", "jobs/finalizers"], ["update", "patch"]),
                       rule([CORE], ["pods"], ["list", "watch", "create", "delete", "patch"]), EVENTS],
    "endpoint-controller": [rule([CORE], ["services", "pods"], READ),
                            rule([CORE], ["endpoints"], READ + ["create", "update", "delete"]), EVENTS],
    "namespace-controller": [rule([CORE], ["namespaces"], READ + ["delete"]),
                             rule([CORE], ["namespaces/finalize", "namespaces/status"], ["update"]),
                             rule(["*"], ["*"], ["get", "list", "delete", "deletecollection"])],
    "generic-garbage-collector": [rule(["*"], ["*"], READ + ["patch", "update", "delete"])],
    "node-controller": [rule([CORE], ["nodes"], READ + ["update", "patch", "delete"]),
                        rule([CORE], ["nodes/status"], ["patch", "update"]),
                        rule([CORE], ["pods"], ["list", "watch", "delete"]),
                        rule([CORE], ["pods/status"], ["patch", "update"]),
                        rule([CORE], ["pods/eviction"], ["create"]), EVENTS],
    "service-account-controller": [rule([CORE], ["serviceaccounts"], ["create"]), EVENTS],
    "root-ca-cert-publisher": [rule([CORE], ["configmaps"], ["create", "update"]), EVENTS],
    "disruption-controller": [rule(["policy"], ["poddisruptionbudgets"], READ),
                              rule(["policy"], ["poddisruptionbudgets/status"], ["update"]),
                              rule([CORE], ["pods"], READ), rule([APPS], WORKLOADS, READ), EVENTS],
}

CLUSTER_ROLES: dict[str, list[Obj]] = {
    "cluster-admin": [rule(["*"], ["*"], ALL), urls(["*"], ALL)],
    "admin": _editor() + [rule([RBAC_GROUP], ["roles", "rolebindings"], READ + WRITE)],
    "edit": _editor(),
    "view": _viewer(),
    "system:basic-user": [rule(["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                               ["create"]),
                          rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"])],
    "system:discovery": [urls(["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", "/version",
                               "/version/", "/healthz", "/livez", "/readyz"], ["get"])],
    "system:kube-scheduler": [rule([CORE], ["pods", "nodes", "services", "namespaces"], READ),
                              rule([CORE], ["pods/binding"], ["create"]),
                              rule([CORE], ["pods/status"], ["patch", "update"]),
                              rule([COORD], ["leases"], ["create"]),
                              rule([COORD], ["leases"], ["get", "update"], ["kube-scheduler"]), EVENTS],
    # Its Lease, its controllers' service accounts and their tokens (controllers/credentials.py), and the shared
    # informers (the garbage collector's watch every kind); the controllers' own work is in their roles above.
    "system:kube-controller-manager": [rule([COORD], ["leases"], ["create"]),
                                       rule([COORD], ["leases"], ["get", "update"], ["kube-controller-manager"]),
                                       rule([CORE], ["serviceaccounts"], ["create"]),
                                       rule([CORE], ["serviceaccounts/token"], ["create"]),
                                       rule(["*"], ["*"], ["list", "watch"]), EVENTS],
    **{f"system:controller:{name}": rules for name, rules in CONTROLLER_ROLES.items()},
}

# name -> (role, subjects)
CLUSTER_ROLE_BINDINGS: dict[str, tuple[str, list[Obj]]] = {
    "cluster-admin": ("cluster-admin", [{"kind": "Group", "name": "system:masters"}]),
    "system:basic-user": ("system:basic-user", [{"kind": "Group", "name": "system:authenticated"}]),
    "system:discovery": ("system:discovery", [{"kind": "Group", "name": "system:authenticated"}]),
    "system:kube-scheduler": ("system:kube-scheduler", [{"kind": "User", "name": "system:kube-scheduler"}]),
    "system:kube-controller-manager": ("system:kube-controller-manager",
                                       [{"kind": "User", "name": "system:kube-controller-manager"}]),
    **{f"system:controller:{name}": (f"system:controller:{name}",
                                     [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}])
       for name in CONTROLLER_ROLES},
}

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"  # "true": the masters add the default rules it lacks
BOOTSTRAP = {AUTOUPDATE: "true"}


def cluster_roles() -> list[Obj]:
    return [{"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole",
             "metadata": {"name": name, "annotations": dict(BOOTSTRAP),
                          "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
             "rules": rules} for name, rules in CLUSTER_ROLES.items()]


def cluster_role_bindings() -> list[Obj]:
    return [{"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": name, "annotations": dict(BOOTSTRAP),
                          "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
             "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role}, "subjects": subjects}
            for name, (role, subjects) in CLUSTER_ROLE_BINDINGS.items()]
