"""`kubectl --as USER --as-group GROUP`: a request that carries Impersonate-User / Impersonate-Group /
Impersonate-Uid / Impersonate-Extra-* headers is served as that user, once the authenticated user is allowed to
impersonate each of them (verb `impersonate` on users, groups, serviceaccounts or uids, as kube-apiserver's
impersonation filter checks; cluster-admin may). It runs after authentication and before authorization, so the
request is then authorized as the impersonated user."""
from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web

from api.authentication import SA_PREFIX, User, signed_in
from api.authorization import Authorizer
from api.errors import ApiError
from api.rbac import Attributes
from api.responses import reply

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
USER, GROUP, UID, EXTRA = "Impersonate-User", "Impersonate-Group", "Impersonate-Uid", "Impersonate-Extra-"


def _targets(name: str, groups: list[str], uid: str, extra: dict[str, list[str]]) -> list[Attributes]:
    """What the requester must be allowed to impersonate (without the requester's own name, filled in later)."""
    asked = []
    if name.startswith(SA_PREFIX) and name.count(":") == 3:
        namespace, account = name[len(SA_PREFIX):].split(":")
        asked.append(Attributes("", (), "impersonate", "", "serviceaccounts", namespace=namespace, name=account))
    else:
        asked.append(Attributes("", (), "impersonate", "", "users", name=name))
    asked += [Attributes("", (), "impersonate", "", "groups", name=g) for g in groups]
    if uid:
        asked.append(Attributes("", (), "impersonate", "authentication.k8s.io", "uids", name=uid))
    asked += [Attributes("", (), "impersonate", "authentication.k8s.io", f"userextras/{key}", name=value)
              for key, values in extra.items() for value in values]
    return asked


class Impersonation:
    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        headers = request.headers
        name = headers.get(USER, "")
        groups = headers.getall(GROUP, [])
        uid = headers.get(UID, "")
        extra = {k[len(EXTRA):].lower(): headers.getall(k) for k in set(headers) if k.startswith(EXTRA)}
        if not (name or groups or uid or extra):
            return await handler(request)
        if not name:
            return reply(ApiError(400, f"requested impersonation of groups, a uid or extras without {USER}; name "
                                       "the user too (kubectl --as USER)").status(), 400)
        requester: User = request["user"]
        for a in _targets(name, groups, uid, extra):
            a = Attributes(requester.name, requester.groups, a.verb, a.api_group, a.resource, namespace=a.namespace,
                           name=a.name)
            if await self.authorizer.decide(a) is None:
                what = f'{a.resource} "{a.name}"' if a.resource != "serviceaccounts" else \
                    f'serviceaccounts "{a.name}" in namespace "{a.namespace}"'
                status = ApiError(403, f'{what} is forbidden: User "{requester.name}" cannot impersonate resource '
                                       f'"{a.resource}" in API group "{a.api_group}"'
                                       + (f' in the namespace "{a.namespace}"' if a.namespace else
                                          " at the cluster scope"), reason="Forbidden").status()
                return reply(status, 403)
        if name.startswith(SA_PREFIX):
            groups = [*groups, "system:serviceaccounts", f"system:serviceaccounts:{name.split(':')[2]}"]
        request["user"] = signed_in(name, uid, tuple(groups), **extra)
        return await handler(request)
