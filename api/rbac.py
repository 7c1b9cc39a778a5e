"""Role-based access control, evaluated as Kubernetes' RBAC authorizer does (rbac.authorization.k8s.io/v1).

A request is allowed when some binding that names the user (or one of their groups, or their service account)
points at a role with a rule that covers the request:

    ClusterRoleBinding  --roleRef-->  ClusterRole       anywhere in the cluster
    RoleBinding (in ns) --roleRef-->  Role (in ns) or ClusterRole      only in that namespace

    rule {apiGroups: [""], resources: ["pods", "pods/log"], verbs: ["get", "list"], resourceNames: ["web"]}
    rule {nonResourceURLs: ["/healthz", "/api/*"], verbs: ["get"]}

Rules only allow; nothing denies. `*` matches anything in verbs, apiGroups and resources, `*/scale` any
resource's scale subresource, and a non-resource URL ending in `*` is a prefix. Pure: the caller hands in the
roles and bindings (api/authorization.py keeps them from the store).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

Obj = dict[str, Any]


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, as the authorizer sees it (Kubernetes' authorizer.Attributes)."""

    user: str
    groups: tuple[str, ...]
    verb: str  # get list watch create update patch delete deletecollection (or an HTTP verb, lowercased)
    api_group: str = ""
    resource: str = ""  # plural; empty for a non-resource request
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # a non-resource request's URL path

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


@dataclass
class Policy:
    """The cluster's roles and bindings, as read from the store."""

    roles: dict[tuple[str, str], Obj] = field(default_factory=dict)  # (namespace, name) -> Role
    cluster_roles: dict[str, Obj] = field(default_factory=dict)
    role_bindings: list[Obj] = field(default_factory=list)
    cluster_role_bindings: list[Obj] = field(default_factory=list)


def _matches(values: Iterable[str] | None, wanted: str) -> bool:
    values = list(values or [])
    return "*" in values or wanted in values


def _resource_matches(resources: Iterable[str] | None, a: Attributes) -> bool:
    resources = list(resources or [])
    combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    return ("*" in resources or combined in resources
            or (a.subresource and f"*/{a.subresource}" in resources)
            or (not a.subresource and a.resource in resources))


def _url_matches(urls: Iterable[str] | None, path: str) -> bool:
    for url in urls or []:
        if url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(rule: Obj, a: Attributes) -> bool:
    if not _matches(rule.get("verbs"), a.verb):
        return False
    if not a.is_resource:
        return _url_matches(rule.get("nonResourceURLs"), a.path)
    names = rule.get("resourceNames")
    return (_matches(rule.get("apiGroups"), a.api_group) and _resource_matches(rule.get("resources"), a)
            and (not names or a.name in names))


def subject_matches(subject: Obj, a: Attributes) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == a.user
    if kind == "Group":
        return name in a.groups
    if kind == "ServiceAccount":
        return a.user == f"system:serviceaccount:{subject.get('namespace', '')}:{name}"
    return False


def _rules(ref: Obj, namespace: str, policy: Policy) -> list[Obj]:
    if ref.get("kind") == "ClusterRole":
        role = policy.cluster_roles.get(ref.get("name", ""))
    else:
        role = policy.roles.get((namespace, ref.get("name", "")))
    return list((role or {}).get("rules") or [])


def allowed(a: Attributes, policy: Policy) -> str | None:
    """The name of a binding that allows the request, or None."""
    for binding in policy.cluster_role_bindings:
        if any(subject_matches(s, a) for s in binding.get("subjects") or []):
            if any(rule_allows(r, a) for r in _rules(binding.get("roleRef") or {}, "", policy)):
                return f"ClusterRoleBinding {binding['metadata']['name']}"
    if not a.namespace:
        return None
    for binding in policy.role_bindings:
        meta = binding["metadata"]
        if meta.get("namespace") == a.namespace and any(subject_matches(s, a) for s in binding.get("subjects") or []):
            if any(rule_allows(r, a) for r in _rules(binding.get("roleRef") or {}, a.namespace, policy)):
                return f"RoleBinding {a.namespace}/{meta['name']}"
    return None


def rules_for(user: str, groups: tuple[str, ...], namespace: str, policy: Policy) -> list[Obj]:
    """Every rule that applies to the user in `namespace`: those of its cluster role bindings and of its role
    bindings there (SelfSubjectRulesReview, `kubectl auth can-i --list`)."""
    who = Attributes(user, groups, "")
    out: list[Obj] = []
    for binding in policy.cluster_role_bindings:
        if any(subject_matches(s, who) for s in binding.get("subjects") or []):
            out += _rules(binding.get("roleRef") or {}, "", policy)
    for binding in policy.role_bindings:
        if namespace and binding["metadata"].get("namespace") == namespace and \
                any(subject_matches(s, who) for s in binding.get("subjects") or []):
            out += _rules(binding.get("roleRef") or {}, namespace, policy)
    return out


def forbidden_message(a: Attributes) -> str:
    """kube-apiserver's wording, which kubectl and tests match on."""
    if not a.is_resource:
        return f'forbidden: User "{a.user}" cannot {a.verb} path "{a.path}"'
    what = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    named = f' "{a.name}"' if a.name else ""
    where = f' in the namespace "{a.namespace}"' if a.namespace else " at the cluster scope"
    return (f'{a.resource}{named} is forbidden: User "{a.user}" cannot {a.verb} resource "{what}" in API group '
            f'"{a.api_group}"{where}')
