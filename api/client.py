"""The async client controllers, the scheduler and kubelets use: the kube API over HTTP only.

    client = ApiClient(["https://127.0.0.1:6443", "https://127.0.0.1:6444"], token="...", ca_file="ca.crt")
    pod = await client.get("pods", "web-1", namespace="default")
    async for kind, obj in client.watch("pods", namespace="default"):
        ...   # ("ADDED" | "MODIFIED" | "DELETED", object), or ("RELIST", [objects]) after a 410

It knows several servers and moves to the next one on a refused connection, a timeout or a 503
(a master without quorum), so a caller survives the death of the master it was talking to. A
watch resumes from the last resourceVersion it saw; when that is too old (410 Expired) it lists
again and hands the whole list over as one RELIST event, so an informer can replace its cache.
"""
from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any, AsyncIterator, Protocol

import aiohttp

from api.registry import RESOURCES, Resource

Obj = dict[str, Any]
RETRIES = 6
# A watch that hears nothing for this long moves to the next server. The server sends a bookmark every 5 s of
# quiet (api/watching.py), so this is three missed ones: a master whose container was killed sends no FIN.
WATCH_SILENCE = 15.0
PATCH_TYPES = {"merge": "application/merge-patch+json", "strategic": "application/strategic-merge-patch+json",
               "json": "application/json-patch+json"}


class Credentials(Protocol):
    """A bearer token that changes over time (a service account's, from TokenRequest): asked before every request,
    told when the server refused it."""

    async def token(self) -> str: ...

    def refused(self) -> None: ...


class StaticToken:
    """A token that never changes (from a token file)."""

    def __init__(self, token: str) -> None:
        self.value = token

    async def token(self) -> str:
        return self.value

    def refused(self) -> None:
        pass


class ApiClientError(Exception):
    def __init__(self, status: int, body: Obj) -> None:
        super().__init__(f"{status} {body.get('reason', '')}: {body.get('message', body)}")
        self.status = status
        self.reason = body.get("reason", "")
        self.body = body


class NotFound(ApiClientError):
    pass


class Conflict(ApiClientError):
    """409: AlreadyExists on create, or the object changed since it was read."""


class Expired(ApiClientError):
    pass


def _error(status: int, body: Obj) -> ApiClientError:
    cls = {404: NotFound, 409: Conflict, 410: Expired}.get(status, ApiClientError)
    return cls(status, body)


def resource(name: str) -> Resource:
    """A resource by plural, `plural.group` or kind: "pods", "deployments.apps", "Deployment"."""
    for res in RESOURCES:
        if name in (res.plural, f"{res.plural}.{res.group}", res.kind):
            return res
    raise ValueError(f"unknown resource {name!r}")


def path(res: Resource, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
    base = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
    if res.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{res.plural}"
    if name:
        base += f"/{name}"
    if sub:
        base += f"/{sub}"
    return base


class ApiClient:
    def __init__(self, servers: list[str], *, token: str | None = None, ca_file: str | None = None,
                 timeout: float = 10.0, credentials: Credentials | None = None, user_agent: str = "raftkube") -> None:
        """`token`: a fixed bearer token; `credentials`: one that is renewed (api/client.py Credentials).
        `user_agent`: the component's name, which the server records as the manager of the fields it writes."""
        if not servers:
            raise ValueError("ApiClient needs at least one server URL")
        self.servers = [s.rstrip("/") for s in servers]
        self.credentials = credentials or (StaticToken(token) if token else None)
        self.ca_file = ca_file
        self.tls = ssl.create_default_context(cafile=ca_file) if ca_file else None  # the cluster's own CA
        self.timeout = timeout
        self.user_agent = user_agent
        self._current = 0
        self._session: aiohttp.ClientSession | None = None

    def with_credentials(self, credentials: Credentials) -> "ApiClient":
        """A client of the same servers, acting as someone else."""
        return ApiClient(self.servers, ca_file=self.ca_file, timeout=self.timeout, credentials=credentials,
                         user_agent=self.user_agent)

    async def __aenter__(self) -> "ApiClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.tls or True),
                                                  headers={"User-Agent": f"{self.user_agent}/v1.32.0 (raftkube)"})
        return self._session

    async def authorization(self) -> dict[str, str]:
        """The Authorization header of the next request (none without credentials)."""
        return {"Authorization": f"Bearer {await self.credentials.token()}"} if self.credentials else {}

    def _next_server(self) -> None:
        self._current = (self._current + 1) % len(self.servers)

    async def request(self, method: str, url_path: str, *, body: Any = None, params: dict | None = None,
                      content_type: str = "application/json") -> Any:
        """One request, moved to the next server on connection trouble or a 503."""
        data = json.dumps(body) if body is not None else None
        last: Exception | None = None
        renewed = False
        for attempt in range(RETRIES):
            url = self.servers[self._current] + url_path
            try:
                headers = {"Content-Type": content_type, "Accept": "application/json", **await self.authorization()}
                async with self.session.request(method, url, data=data, params=params, headers=headers,
                                                timeout=aiohttp.ClientTimeout(total=self.timeout)) as r:
                    text = await r.text()
                    answer = json.loads(text) if text.strip() else {}
                    if r.status == 401 and self.credentials is not None and not renewed:
                        self.credentials.refused()  # expired, or its account made again: one more try, renewed
                        renewed = True
                        continue
                    if r.status == 503:
                        raise _error(r.status, answer)
                    if r.status >= 400:
                        raise _error(r.status, answer if isinstance(answer, dict) else {"message": text})
                    return answer
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ApiClientError) as exc:
                if isinstance(exc, ApiClientError) and exc.status != 503:
                    raise
                last = exc
                self._next_server()
                await asyncio.sleep(min(0.1 * 2 ** attempt, 1.0))
        raise last  # type: ignore[misc]

    # -- verbs ----------------------------------------------------------------------------

    async def get(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        return await self.request("GET", path(resource(kind), namespace, name))

    async def list(self, kind: str, namespace: str | None = None, *, label_selector: str | None = None,
                   field_selector: str | None = None) -> tuple[list[Obj], str]:
        params = {k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}
        answer = await self.request("GET", path(resource(kind), namespace), params=params)
        return answer.get("items") or [], answer["metadata"]["resourceVersion"]

    async def create(self, kind: str, obj: Obj, namespace: str | None = None) -> Obj:
        namespace = namespace or (obj.get("metadata") or {}).get("namespace")
        return await self.request("POST", path(resource(kind), namespace), body=obj)

    async def update(self, kind: str, obj: Obj) -> Obj:
        """PUT the object; 409 Conflict if its resourceVersion is no longer current."""
        meta = obj["metadata"]
        return await self.request("PUT", path(resource(kind), meta.get("namespace"), meta["name"]), body=obj)

    async def update_status(self, kind: str, obj: Obj) -> Obj:
        meta = obj["metadata"]
        return await self.request("PUT", path(resource(kind), meta.get("namespace"), meta["name"], "status"),
                                  body=obj)

    async def patch(self, kind: str, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None) -> Obj:
        return await self.request("PATCH", path(resource(kind), namespace, name, subresource), body=patch,
                                  content_type=PATCH_TYPES[patch_type])

    async def delete(self, kind: str, name: str, namespace: str | None = None, *,
                     grace_period_seconds: int | None = None, uid: str | None = None,
                     propagation_policy: str | None = None) -> Obj:
        """DELETE; `uid` makes it apply only to that incarnation of the object; `propagation_policy` is
        Background (the default), Foreground or Orphan, for its dependents."""
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if uid:
            options["preconditions"] = {"uid": uid}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        return await self.request("DELETE", path(resource(kind), namespace, name), body=options)

    async def post_subresource(self, kind: str, name: str, sub: str, body: Obj, namespace: str | None = None) -> Obj:
        """pods/binding, pods/eviction."""
        return await self.request("POST", path(resource(kind), namespace, name, sub), body=body)

    # -- watch ----------------------------------------------------------------------------

    async def watch(self, kind: str, namespace: str | None = None, *, resource_version: str | None = None,
                    label_selector: str | None = None, field_selector: str | None = None
                    ) -> AsyncIterator[tuple[str, Any]]:
        """Events forever: resumes after a broken stream, relists (one RELIST event) after a 410."""
        res = resource(kind)
        if resource_version is None:
            items, resource_version = await self.list(kind, namespace, label_selector=label_selector,
                                                      field_selector=field_selector)
            yield "RELIST", items
        while True:
            params = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true"}
            params.update({k: v for k, v in (("labelSelector", label_selector),
                                             ("fieldSelector", field_selector)) if v})
            try:
                async for kind_, obj in self._stream(path(res, namespace), params):
                    if kind_ == "ERROR":
                        if obj.get("code") == 410:
                            raise Expired(410, obj)
                        raise _error(int(obj.get("code") or 500), obj)
                    resource_version = obj["metadata"]["resourceVersion"]
                    if kind_ != "BOOKMARK":
                        yield kind_, obj
            except Expired:
                items, resource_version = await self.list(kind, namespace, label_selector=label_selector,
                                                          field_selector=field_selector)
                yield "RELIST", items
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ApiClientError) as exc:
                if isinstance(exc, ApiClientError) and exc.status == 401 and self.credentials is not None:
                    self.credentials.refused()
                self._next_server()
                await asyncio.sleep(0.2)

    async def _stream(self, url_path: str, params: dict) -> AsyncIterator[tuple[str, Obj]]:
        url = self.servers[self._current] + url_path
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=WATCH_SILENCE)
        async with self.session.get(url, params=params, timeout=timeout, headers=await self.authorization()) as r:
            if r.status != 200:
                text = await r.text()
                raise _error(r.status, json.loads(text) if text.strip().startswith("{") else {"message": text})
            async for line in r.content:
                if line.strip():
                    event = json.loads(line)
                    yield event["type"], event["object"]
