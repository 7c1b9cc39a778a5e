"""Requests that ask a question rather than store an object: SelfSubjectReview (`kubectl auth whoami`),
SelfSubjectAccessReview (`kubectl auth can-i`), SelfSubjectRulesReview (`kubectl auth can-i --list`) and
TokenRequest (`kubectl create token`, and the kubelet for a pod's projected token)."""
from __future__ import annotations

from typing import Any

from api import errors, node_restriction, objects
from api.authentication import AUDIENCE, ServiceAccountKeys, User
from api.authorization import Authorizer
from api.rbac import Attributes
from api.registry import Resource, lookup
from api.storage import ObjectStore

Obj = dict[str, Any]
MIN_TOKEN_SECONDS = 600


def _attributes(res: Resource, user: User, spec: Obj) -> Attributes:
    res_attrs, url_attrs = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if isinstance(res_attrs, dict) and res_attrs:
        return Attributes(user.name, user.groups, res_attrs.get("verb") or "", res_attrs.get("group") or "",
                          res_attrs.get("resource") or "", res_attrs.get("subresource") or "",
                          res_attrs.get("namespace") or "", res_attrs.get("name") or "")
    if isinstance(url_attrs, dict) and url_attrs:
        return Attributes(user.name, user.groups, url_attrs.get("verb") or "", path=url_attrs.get("path") or "")
    raise errors.invalid(res.kind, "", [("spec", "Required value: resourceAttributes or nonResourceAttributes")],
                         res.group)


async def review(res: Resource, body: Obj, user: User, authorizer: Authorizer) -> Obj:
    """The review answered for the asking user."""
    out = {"apiVersion": res.group_version, "kind": res.kind, "metadata": {"creationTimestamp": objects.now()}}
    if res.kind == "SelfSubjectReview":
        return {**out, "status": {"userInfo": user.info()}}
    spec = body.get("spec") or {}
    if res.kind == "SelfSubjectRulesReview":
        namespace = spec.get("namespace") if isinstance(spec, dict) else None
        rules, incomplete = await authorizer.rules(user, namespace if isinstance(namespace, str) else "")
        return {**out, "spec": spec, "status": rules_status(rules, incomplete)}
    reason = await authorizer.decide(_attributes(res, user, spec))
    return {**out, "spec": spec, "status": {"allowed": reason is not None, **({"reason": reason} if reason else {})}}


def rules_status(rules: list[Obj], incomplete: str) -> Obj:
    """SubjectRulesReviewStatus: each policy rule as a resource rule or a non-resource one, as upstream splits
    them; `incomplete` says why the list is not all the user may do."""
    resource_rules, url_rules = [], []
    for rule in rules:
        verbs = list(rule.get("verbs") or [])
        if rule.get("nonResourceURLs"):
            url_rules.append({"verbs": verbs, "nonResourceURLs": list(rule["nonResourceURLs"])})
        if rule.get("resources"):
            resource_rules.append({"verbs": verbs, "apiGroups": list(rule.get("apiGroups") or []),
                                   "resources": list(rule["resources"]),
                                   **({"resourceNames": list(rule["resourceNames"])} if rule.get("resourceNames")
                                      else {})})
    return {"resourceRules": resource_rules, "nonResourceRules": url_rules, "incomplete": bool(incomplete),
            **({"evaluationError": incomplete} if incomplete else {})}


async def token_request(store: ObjectStore, keys: ServiceAccountKeys, namespace: str, account_name: str,
                        body: Obj, user: User) -> Obj:
    """A signed token for serviceaccounts/NAME/token, bound to a pod when the request names one (a kubelet's must
    be, to a pod of its own: api/node_restriction.py)."""
    spec = body.get("spec") or {}
    seconds = spec.get("expirationSeconds") or 3600
    if seconds < MIN_TOKEN_SECONDS:
        raise errors.invalid("TokenRequest", account_name, [("spec.expirationSeconds", f"Invalid value: {seconds}: "
                                                             "may not specify a duration less than 10 minutes")],
                             "authentication.k8s.io")
    account = await store.get(lookup("", "v1", "serviceaccounts"), namespace, account_name)
    found = None
    bound = spec.get("boundObjectRef")
    if bound:
        if not isinstance(bound, dict) or bound.get("kind") != "Pod":
            raise errors.bad_request("boundObjectRef: only a Pod can hold a token here")
        found = await store.get(lookup("", "v1", "pods"), namespace, str(bound.get("name") or ""))
        if bound.get("uid") not in (None, "", found["metadata"]["uid"]):
            raise errors.conflict("pods", bound.get("name") or "")
    node_restriction.admit_token(user, account_name, found)
    pod = (found["metadata"]["name"], found["metadata"]["uid"]) if found else None
    token, expires = keys.issue(namespace=namespace, name=account_name, uid=account["metadata"]["uid"],
                                seconds=seconds, audiences=spec.get("audiences") or [AUDIENCE], pod=pod)
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "metadata": {"name": account_name, "namespace": namespace, "creationTimestamp": objects.now()},
            "spec": {**spec, "expirationSeconds": seconds},
            "status": {"token": token, "expirationTimestamp": objects.timestamp(expires)}}
