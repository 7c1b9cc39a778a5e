"""May this user do this? kube-apiserver's --authorization-mode: AlwaysAllow, or Node then RBAC.

Every request is described as Kubernetes' authorizer attributes (user, verb, API group, resource, subresource,
namespace, name; or a non-resource path) and asked of each mode in turn; the first that allows it wins, and a
request none allows is a 403 Forbidden worded as kube-apiserver words it. Members of system:masters may do
anything, as in Kubernetes.

- RBAC (api/rbac.py): the Roles, ClusterRoles and their bindings in this master's copy of the store, read again
  whenever one of them changes (a watch on their keys marks the copy stale).
- Node (api/node_authorizer.py): what a kubelet, system:node:NAME in group system:nodes, may do.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from aiohttp import web

from api import node_authorizer
from api.authentication import User
from api.errors import ApiError
from api.query import TRUE
from api.rbac import Attributes, Obj, Policy, allowed, forbidden_message, rules_for
from api.registry import STREAMING, lookup
from api.responses import reply
from kvstore.client import prefix_end

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MODES = ("AlwaysAllow", "Node", "RBAC")
RBAC_GROUP = "rbac.authorization.k8s.io"
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "HEAD": "get"}


def attributes(request: web.Request, user: User, parse_path: Callable[[str], Any]) -> Attributes:
    """The request as the authorizer sees it; `parse_path` is the server's (a resource path, or ApiError)."""
    path = request.path
    try:
        t = parse_path(path) if path.startswith(("/api/", "/apis/")) else None
    except ApiError:
        t = None
    if t is None:
        return Attributes(user.name, user.groups, request.method.lower(), path=path)
    if t.subresource in STREAMING:  # a WebSocket is a GET, SPDY a POST: either way a create, as upstream
        verb = "create"
    elif request.method == "GET":
        verb = "get" if t.name else ("watch" if request.query.get("watch") in TRUE else "list")
    elif request.method == "DELETE":
        verb = "delete" if t.name else "deletecollection"
    else:
        verb = VERBS.get(request.method, request.method.lower())
    return Attributes(user.name, user.groups, verb, t.res.group, t.res.plural, t.subresource or "",
                      t.namespace or "", t.name or "")


class _Stale:
    """A watch-hub sink that only notes that something under the RBAC keys changed (or the watch ended)."""

    def __init__(self) -> None:
        self.stale = True
        self.watching = False

    def put_nowait(self, item: tuple[Any, Any]) -> None:
        self.stale = True
        if item[1] is None:  # the hub cancelled the watch (a snapshot replaced the state)
            self.watching = False

    def qsize(self) -> int:
        return 0


class Authorizer:
    def __init__(self, modes: list[str], objects, hub) -> None:
        unknown = set(modes) - set(MODES)
        if unknown or not modes:
            raise ValueError(f"--authorization-mode: {', '.join(sorted(unknown)) or 'nothing'} is not one of "
                             f"{', '.join(MODES)}")
        self.modes = modes
        self.objects = objects
        self.hub = hub
        self._policy = Policy()
        self._marker = _Stale()

    async def decide(self, a: Attributes) -> str | None:
        """Why the request is allowed (for SelfSubjectAccessReview), or None if it is not."""
        if "system:masters" in a.groups:
            return "system:masters may do anything"
        for mode in self.modes:
            if mode == "AlwaysAllow":
                return "AlwaysAllow"
            if mode == "Node":
                reason = await node_authorizer.decide(a, self.objects)
            else:
                reason = allowed(a, await self.policy())
            if reason:
                return reason
        return None

    async def rules(self, user: User, namespace: str) -> tuple[list[Obj], str]:
        """The rules `user` has in `namespace`, and, when they are not all of what it may do, why not."""
        if "system:masters" in user.groups or "AlwaysAllow" in self.modes:
            return [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                    {"nonResourceURLs": ["*"], "verbs": ["*"]}], ""
        if "Node" in self.modes and node_authorizer.node_of(user.name, user.groups) is not None:
            why = "node authorizer does not support user rule resolution"
        else:
            why = ""
        rules = rules_for(user.name, user.groups, namespace, await self.policy()) if "RBAC" in self.modes else []
        return rules, why

    async def policy(self) -> Policy:
        marker = self._marker
        if not marker.watching:
            prefix = b"/registry/" + RBAC_GROUP.encode() + b"/"
            self.hub.open(self.objects.store, watch_id=0, key=prefix, range_end=prefix_end(prefix), start_revision=0,
                          sink=marker)
            marker.watching, marker.stale = True, True
        if marker.stale:
            marker.stale = False
            lists = {}
            for plural in ("roles", "clusterroles", "rolebindings", "clusterrolebindings"):
                lists[plural], _ = await self.objects.list(lookup(RBAC_GROUP, "v1", plural), None, local=True)
            self._policy = Policy(
                roles={(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in lists["roles"]},
                cluster_roles={r["metadata"]["name"]: r for r in lists["clusterroles"]},
                role_bindings=lists["rolebindings"], cluster_role_bindings=lists["clusterrolebindings"])
        return self._policy

    def middleware(self, parse_path: Callable[[str], Any]) -> Callable:
        @web.middleware
        async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
            user: User = request["user"]
            if user.name == "system:anonymous":  # only the open paths let an anonymous request this far
                return await handler(request)
            a = attributes(request, user, parse_path)
            if await self.decide(a) is None:
                status = ApiError(403, forbidden_message(a), reason="Forbidden",
                                  details={"name": a.name, "group": a.api_group, "kind": a.resource}).status()
                return reply(status, 403)
            return await handler(request)

        return authorize
