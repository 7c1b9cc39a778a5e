"""The resource types this API server serves, and where each lives in the store."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    categories: tuple[str, ...] = ()  # what `kubectl get all` (the "all" category) expands to

    @property
    def stored(self) -> bool:
        """False for the reviews: a create that answers a question and keeps nothing."""
        return "get" in self.verbs

    @property
    def has_generation(self) -> bool:
        """Whether its objects count spec changes in metadata.generation: only the kinds whose controllers report
        an observedGeneration, as kube-apiserver's strategies set it (a ConfigMap or a Pod has none)."""
        return self.kind in GENERATION_KINDS

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def prefix(self, namespace: str | None = None) -> str:
        """The key prefix of every object of this type (in one namespace, when given)."""
        base = f"/registry/{self.group + '/' if self.group else ''}{self.plural}/"
        return base + f"{namespace}/" if namespace and self.namespaced else base

    def key(self, namespace: str | None, name: str) -> str:
        return self.prefix(namespace) + name


ALL = ("all",)
GENERATION_KINDS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "PodDisruptionBudget",
                              "ReplicationController"})


def _r(group: str, kind: str, plural: str, namespaced: bool = True, short: tuple[str, ...] = (),
       sub: tuple[str, ...] = (), categories: tuple[str, ...] = ()) -> Resource:
    return Resource(group, "v1", kind, plural, namespaced, short, sub, categories=categories)


RESOURCES: list[Resource] = [
    _r("", "Namespace", "namespaces", False, ("ns",), ("status", "finalize")),
    _r("", "Node", "nodes", False, ("no",), ("status",)),
    _r("", "Pod", "pods", True, ("po",), ("status", "binding", "log", "eviction", "exec", "attach", "portforward", "proxy"),
       ALL),
    _r("", "Service", "services", True, ("svc",), ("status", "proxy"), ALL),
    _r("", "Endpoints", "endpoints", True, ("ep",)),
    _r("", "ConfigMap", "configmaps", True, ("cm",)),
    _r("", "Secret", "secrets", True),
    _r("", "Event", "events", True, ("ev",)),
    _r("", "ServiceAccount", "serviceaccounts", True, ("sa",), ("token",)),
    _r("", "ReplicationController", "replicationcontrollers", True, ("rc",), ("status", "scale"), ALL),
    _r("apps", "Deployment", "deployments", True, ("deploy",), ("status", "scale"), ALL),
    _r("apps", "ReplicaSet", "replicasets", True, ("rs",), ("status", "scale"), ALL),
    _r("apps", "StatefulSet", "statefulsets", True, ("sts",), ("status", "scale"), ALL),
    _r("apps", "DaemonSet", "daemonsets", True, ("ds",), ("status",), ALL),
    _r("apps", "ControllerRevision", "controllerrevisions", True),
    _r("batch", "Job", "jobs", True, (), ("status",), ALL),
    _r("coordination.k8s.io", "Lease", "leases", True),
    _r("policy", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",), ("status",)),
    _r("rbac.authorization.k8s.io", "Role", "roles", True),
    _r("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", True),
    _r("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", False),
    _r("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", False),
    _r("apiregistration.k8s.io", "APIService", "apiservices", False, (), ("status",), ("api-extensions",)),
    Resource("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
             verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False,
             verbs=("create",)),
    Resource("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False, verbs=("create",)),
]

GROUPS: dict[str, list[str]] = {}  # group -> versions, in discovery order
for _res in RESOURCES:
    GROUPS.setdefault(_res.group, [])
    if _res.version not in GROUPS[_res.group]:
        GROUPS[_res.group].append(_res.version)

# Served by another API server in Kubernetes (metrics-server, behind an APIService), here by api/resource_metrics.py;
# not in RESOURCES, since nothing stores, watches, collects or documents them.
AGGREGATED_APIS: list[Resource] = [
    Resource("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", False, verbs=("get", "list")),
    Resource("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", True, verbs=("get", "list")),
]

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES + AGGREGATED_APIS}


def lookup(group: str, version: str, plural: str) -> Resource | None:
    return _BY_PATH.get((group, version, plural))


def in_group_version(group: str, version: str) -> list[Resource]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
STREAMING = ("exec", "attach", "portforward")  # pod subresources the kubelet serves over a WebSocket
