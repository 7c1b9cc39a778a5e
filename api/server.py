"""The kube API on aiohttp: discovery, and get/list/watch/create/update/patch/delete of every resource.

This module routes and answers: paths are parsed by api/paths.py into (resource, namespace, name, subresource),
one handler per verb reads the request and writes the answer. What a write must pass before it is stored
(defaults, validation, admission, a Service's addresses) is api/admission.py's, for every verb alike; reading
and writing objects is api/storage.py's. Every `ApiError` becomes a Status object; a store without quorum
becomes 503 ServiceUnavailable with the store's message.
"""
from __future__ import annotations

import asyncio
import base64
import functools
import logging
import ssl
from typing import Any, Awaitable, Callable

import orjson
import yaml
from aiohttp import web

from api import (
    apply,
    bootstrap_policy,
    bounds,
    deletion,
    discovery,
    errors,
    eviction,
    fields,
    http_proxy,
    openapi,
    patch,
    pod_proxy,
    protobuf,
    resource_metrics,
    reviews,
    schema,
    subresources,
    tables,
    watching,
)
from api.admission import Admission
from api.authentication import Authenticator, ServiceAccountKeys, StaticTokens
from api.authorization import Authorizer
from api.cluster_ips import DEFAULT_RANGE, ClusterIPRange
from api.encryption import Transformer
from api.errors import ApiError
from api.impersonation import Impersonation
from api.inflight import InFlight
from api.kubelet_client import KubeletClient
from api.metrics import TARGET, ApiMetrics
from api.metrics import middleware as metrics_middleware
from api.paths import Target, parse_path
from api.query import flag
from api.registry import AGGREGATED_APIS, DEFAULT_NAMESPACES, STREAMING, Resource, lookup
from api.responses import reply
from api.retry import retry_stale
from api.selectors import parse_fields, parse_labels, single_name
from api.service_allocation import ServiceAllocator
from api.storage import DRY_RUN, ObjectStore
from kvstore import errors as kv_errors
from kvstore.errors import KVFailure
from kvstore.metrics import handler as metrics_handler
from kvstore.watch import WatchHub

log = logging.getLogger("raftkube.api")

MAX_BODY = 3 << 20
SCALE = "io.k8s.api.autoscaling.v1.Scale"
EVICTION = "io.k8s.api.policy.v1.Eviction"
BINDING = "io.k8s.api.core.v1.Binding"
DELETE_OPTIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
TOKEN_REQUEST = "io.k8s.api.authentication.v1.TokenRequest"
APPLY_PATCH = "application/apply-patch+yaml"
YAML_TYPES = {APPLY_PATCH, "application/yaml"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class YamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML bodies as kube-apiserver reads them: the safe loader (libyaml's, where PyYAML has it: the pure-Python
    scanner is quadratic in nesting, a second of the event loop for 2,000 brackets) and timestamps left as
    strings (Kubernetes turns YAML into JSON, where a time is a string)."""

    yaml_implicit_resolvers = {first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
                               for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return reply(exc.status(), exc.code)
    except KVFailure as exc:
        code = 503 if exc.error.code == kv_errors.UNAVAILABLE else 500
        return reply(ApiError(code, exc.error.message).status(), code)
    except web.HTTPRequestEntityTooLarge:
        return reply(ApiError(413, f"request body is larger than {MAX_BODY} bytes").status(), 413)
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug of ours: say so as a Status, with what it was
        log.exception("internal error on %s %s", request.method, request.path)
        return reply(ApiError(500, f"internal error on {request.method} {request.path}: "
                                   f"{type(exc).__name__}: {exc}").status(), 500)


class ApiServer:
    def __init__(self, store, hub: WatchHub, *, service_ip_range: str = DEFAULT_RANGE,
                 tokens: StaticTokens | None = None, service_account_keys: ServiceAccountKeys | None = None,
                 authorization: tuple[str, ...] = ("AlwaysAllow",), metrics: ApiMetrics | None = None,
                 transformer: Transformer | None = None, inflight: InFlight | None = None,
                 kubelet_tls: ssl.SSLContext | None = None) -> None:
        """`tokens` None: no authentication (a master started by hand without --token-file). `kubelet_tls`: how it
        reaches kubelets (api/kubelet_client.py), None for not at all."""
        self.tokens = tokens
        self.sa_keys = service_account_keys
        self.inflight = inflight or InFlight()
        self.objects = ObjectStore(store, transformer)
        self.store = store
        self.hub = hub
        self.services = ServiceAllocator(self.objects, ClusterIPRange(service_ip_range))
        self.admission = Admission(self.objects, self.services)
        self.metrics = metrics if metrics is not None else ApiMetrics()  # the master passes its registry's
        self.authenticator = Authenticator(tokens, service_account_keys, self.objects)
        self.kubelets = KubeletClient(kubelet_tls)
        self.authorizer = Authorizer(list(authorization), self.objects, hub)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[metrics_middleware(self.metrics), self.authenticator.middleware,
                                           Impersonation(self.authorizer).middleware, self.inflight.middleware,
                                           self.authorizer.middleware(parse_path), _errors],
                              client_max_size=MAX_BODY)
        app.router.add_get("/metrics", metrics_handler(self.metrics.registry))  # with a token: api/metrics.py
        for path in ("/version", "/version/"):
            app.router.add_get(path, lambda r: asyncio.sleep(0, reply(discovery.VERSION)))
        app.router.add_get("/api", self.api_versions)
        app.router.add_get("/apis", self.api_groups)
        app.router.add_get("/api/{version}", self.resource_list)
        app.router.add_get("/apis/{group}/{version}", self.resource_list)
        app.router.add_get("/openapi/v3", lambda r: asyncio.sleep(0, reply(openapi.root_v3())))
        app.router.add_get("/openapi/v3/api/{version}", self.openapi)
        app.router.add_get("/openapi/v3/apis/{group}/{version}", self.openapi)
        app.router.add_get("/openapi/v2", self.openapi_v2)
        app.router.add_route("*", "/api/{tail:.+}", self.resource)
        app.router.add_route("*", "/apis/{tail:.+}", self.resource)
        return app

    # -- discovery ------------------------------------------------------------------------

    async def api_versions(self, request: web.Request) -> web.Response:
        return self.maybe_aggregated(request, core=True) or reply(discovery.api_versions())

    async def api_groups(self, request: web.Request) -> web.Response:
        return self.maybe_aggregated(request, core=False) or reply(discovery.api_groups())

    @staticmethod
    def maybe_aggregated(request: web.Request, core: bool) -> web.Response | None:
        """Aggregated discovery, with the exact Content-Type kubectl checks, when it is asked for."""
        version = discovery.aggregated_version(request.headers.get("Accept", ""))
        if version is None:
            return None
        return web.Response(body=orjson.dumps(discovery.aggregated(core, version)) + b"\n",
                            headers={"Content-Type": discovery.AGGREGATED.format(version=version)})

    async def resource_list(self, request: web.Request) -> web.Response:
        found = discovery.resource_list(request.match_info.get("group", ""), request.match_info["version"])
        if found is None:
            raise errors.no_such_path(f"the server could not find the requested resource ({request.path})")
        return reply(found)

    async def openapi(self, request: web.Request) -> web.Response:
        found = _openapi_v3(request.match_info.get("group", ""), request.match_info["version"])
        if found is None:
            raise errors.no_such_path(f"no OpenAPI document for {request.path}")
        return web.Response(body=found, content_type="application/json")

    async def openapi_v2(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        if accept and "json" not in accept and "*/*" not in accept:
            raise ApiError(406, "/openapi/v2 is served as application/json only (kubectl reads /openapi/v3)")
        return web.Response(body=_openapi_v2(), content_type="application/json")

    # -- resources ------------------------------------------------------------------------

    async def resource(self, request: web.Request) -> web.StreamResponse:
        t = request[TARGET] = parse_path(request.path)  # for the metrics middleware
        q = request.query
        method = request.method
        DRY_RUN.set(dry_run(q.getall("dryRun", [])))  # set for every request: a connection's task serves many
        if t.res in AGGREGATED_APIS:
            return await resource_metrics.serve(request, t.res, t.namespace, t.name, objects=self.objects,
                                                kubelets=self.kubelets, select=self.select)
        if t.subresource == "proxy":
            return await http_proxy.serve(request, t, self.objects)
        if t.subresource in STREAMING:  # GET for a WebSocket, POST for SPDY: both reach the kubelet
            if method not in ("GET", "POST"):
                raise ApiError(405, f"{method} is not supported on pods/{t.subresource}")
            return await pod_proxy.stream(request, self.objects, self.kubelets, t.namespace, t.name, t.subresource)
        if not t.res.stored:
            if method != "POST" or t.name is not None:
                raise ApiError(405, f"{t.res.plural} can only be created: each is a question, answered at once")
            return await self.review(request, t)
        if method == "GET" and t.name is None:
            if flag(q, "watch"):
                return await self.watch(request, t)
            return await self.list(request, t)
        if method == "GET":
            return await self.get(request, t)
        if method == "POST" and t.name is None:
            return await self.create(request, t)
        if method == "POST" and t.subresource == "token":
            return await self.token_request(request, t)
        if method == "POST" and t.subresource in ("binding", "eviction"):
            return await self.pod_action(request, t)
        if method in ("PUT", "PATCH") and t.name is not None:
            if t.subresource not in (None, "status", "scale", "finalize"):
                raise ApiError(405, f"{method} is not supported on {t.res.plural}/{t.subresource}")
            return await (self.update if method == "PUT" else self.patch)(request, t)
        if method == "DELETE" and t.name is not None:
            return await self.delete(request, t)
        if method == "DELETE":
            return await self.delete_collection(request, t)
        raise ApiError(405, f"{method} is not supported on {request.path}")

    async def body(self, request: web.Request) -> Any:
        """The decoded body (JSON, YAML or protobuf), of a size and depth fit to walk (api/bounds.py)."""
        decoded = self.decode_body(request.content_type, await request.read())
        bounds.size(decoded)
        return decoded

    @staticmethod
    def decode_body(content_type: str, raw: bytes) -> Any:
        if content_type in YAML_TYPES:
            try:
                return yaml.load(raw, Loader=YamlLoader)  # noqa: S506 - a safe loader
            except (yaml.YAMLError, RecursionError) as exc:
                detail = "nested too deep" if isinstance(exc, RecursionError) else exc
                raise errors.bad_request(f"the request body is not valid YAML: {detail}") from None
        if content_type == "application/vnd.kubernetes.protobuf":
            try:
                return protobuf.decode(raw)
            except protobuf.ProtobufUnsupported as exc:
                raise errors.ApiError(415, f"this protobuf body could not be read ({exc}); send it as "
                                           "application/json") from None
            except (UnicodeDecodeError, ValueError) as exc:
                raise errors.bad_request(f"the request body is not valid protobuf: {exc}") from None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"the request body is not valid JSON: {exc}") from None

    @staticmethod
    def definition(t: Target) -> str:
        """The name of the type a request's body is (api/openapi_definitions.json)."""
        return SCALE if t.subresource == "scale" else schema.definition_for(t.res.group, t.res.version, t.res.kind)

    def decode(self, request: web.Request, t: Target, body: Any, definition: str | None = None) -> tuple[Any, list[str]]:
        """The body decoded as Kubernetes' type for the target (api/fields.py), and the warnings to send."""
        decoded, warnings = fields.check(definition or self.definition(t), body, request.query.get("fieldValidation"))
        if not isinstance(decoded, dict):  # JSON null, say: every body here is an object
            raise errors.bad_request("the request body must be a JSON or YAML object")
        return decoded, warnings

    async def get(self, request: web.Request, t: Target) -> web.StreamResponse:
        if t.subresource == "log":  # proxied to the pod's kubelet (api/pod_proxy.py)
            return await pod_proxy.logs(request, self.objects, self.kubelets, t.namespace, t.name)
        if t.subresource not in (None, "status", "scale"):
            raise ApiError(405, f"GET of {t.res.plural}/{t.subresource} is not supported")
        obj = await self.objects.get(t.res, t.namespace, t.name, local=request.query.get("resourceVersion") == "0")
        if t.subresource == "scale":
            return reply(subresources.scale_of(obj))
        if tables.wants_table(request.headers.get("Accept", "")):
            return reply(tables.table(t.res, [obj], None))
        return reply(obj)

    async def list(self, request: web.Request, t: Target) -> web.Response:
        q = request.query
        local = q.get("resourceVersion") == "0"
        name = single_name(q.get("fieldSelector"))
        if name is not None:  # kubectl's wait and rollout ask for one object this way
            try:
                items = [await self.objects.get(t.res, t.namespace, name, local=local)]
            except ApiError:
                items = []
            revision, following = self.objects.revision, None
        else:
            revision, start = continue_token(q.get("continue"))
            limit = int(q["limit"]) if q.get("limit", "").isdigit() else 0
            items, revision, following = await self.objects.page(t.res, t.namespace, local=local and not start,
                                                                 revision=revision, start=start, limit=limit)
        items = self.select(t.res, items, q)
        meta = {"resourceVersion": str(revision)}
        if following is not None:
            meta["continue"] = make_continue_token(revision, following)
        if tables.wants_table(request.headers.get("Accept", "")):
            return reply({**tables.table(t.res, items, str(revision)), "metadata": meta})
        return reply({"kind": f"{t.res.kind}List", "apiVersion": t.res.group_version, "metadata": meta,
                      "items": items})

    @staticmethod
    def select(res: Resource, items: list[dict], q: Any) -> list[dict]:
        labels, fields = parse_labels(q.get("labelSelector")), parse_fields(q.get("fieldSelector"), res.kind)
        return [o for o in items if labels(o) and fields(o)]

    async def create(self, request: web.Request, t: Target) -> web.Response:
        if t.subresource:
            raise ApiError(405, f"POST to {t.res.plural}/{t.subresource} is not served yet")
        body, warnings = self.decode(request, t, await self.body(request))
        obj = self.admission.new_object(t.res, body, t.namespace, request["user"])
        self.record_update(request, t, None, obj)
        return reply(await self.admission.create(t.res, obj), 201, warned(warnings))

    def record_update(self, request: web.Request, t: Target, old: dict | None, new: dict) -> None:
        """`new`'s managedFields after this write, by the manager the request names (api/apply.py)."""
        manager = apply.manager_of(request.query.get("fieldManager"), request.headers.get("User-Agent", ""))
        apply.record_update(old, new, manager, t.res.group_version, self.definition(t.whole), t.subresource)

    async def store_update(self, t: Target, new: dict, expected: int) -> web.Response:
        saved = await self.admission.store_update(t, new, expected)
        return reply(subresources.scale_of(saved) if t.subresource == "scale" else saved)

    async def update(self, request: web.Request, t: Target) -> web.Response:
        body, warnings = self.decode(request, t, await self.body(request))
        rv = ((body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None)

        async def attempt() -> web.Response:  # without a resourceVersion a PUT is unconditional
            old = await self.objects.get(t.res, t.namespace, t.name)
            new = self.admission.changed_object(t, old, body, request["user"])
            self.record_update(request, t, old, new)
            return await self.store_update(t, new, resource_version(rv) if rv else int(old["metadata"]["resourceVersion"]))

        answer = await (attempt() if rv else retry_stale(attempt))
        answer.headers.update(warned(warnings) or {})
        return answer

    async def server_side_apply(self, request: web.Request, t: Target) -> web.Response:
        """PATCH with application/apply-patch+yaml: create or update the object from a configuration,
        owned by `fieldManager` (api/apply.py)."""
        manager = request.query.get("fieldManager")
        if not manager:
            raise errors.bad_request("fieldManager is required for apply requests")
        config, warnings = self.decode(request, t, await self.body(request))
        if not isinstance(config, dict):
            raise errors.bad_request("an apply configuration must be an object")
        config = {**config, "metadata": {**(config.get("metadata") or {}), "name": t.name}}

        async def attempt() -> web.Response:
            try:
                old = await self.objects.get(t.res, t.namespace, t.name)
            except ApiError as exc:
                if exc.code != 404:
                    raise
                obj = self.admission.new_object(t.res, apply.apply(None, config, manager, t.res.group_version,
                                                                   self.definition(t)), t.namespace, request["user"])
                try:
                    return reply(await self.admission.create(t.res, obj), 201, warned(warnings))
                except ApiError as exc:
                    if exc.reason == "AlreadyExists":  # someone created it meanwhile: apply to theirs
                        raise errors.conflict(t.res.plural, t.name, t.res.group) from None
                    raise
            new = self.admission.changed_object(t, old, apply.apply(old, config, manager, t.res.group_version,
                                                                    self.definition(t),
                                                                    force=flag(request.query, "force")),
                                                  request["user"])
            if new == {**old, "metadata": {k: v for k, v in old["metadata"].items() if k != "resourceVersion"}}:
                return reply(old, 200, warned(warnings))  # nothing to change: no new revision
            return await self.store_update(t, new, int(old["metadata"]["resourceVersion"]))

        return await retry_stale(attempt)

    async def patch(self, request: web.Request, t: Target) -> web.Response:
        """Read, patch, compare-and-swap; a race with another writer is retried here (kubectl's
        patches carry no resourceVersion, so a 409 would be ours to absorb)."""
        content_type = request.content_type
        if content_type == APPLY_PATCH:
            return await self.server_side_apply(request, t)
        body = await self.body(request)
        pinned = t.subresource != "scale" and pins_version(content_type, body)

        async def attempt() -> web.Response:
            old = await self.objects.get(t.res, t.namespace, t.name)
            target = subresources.scale_of(old) if t.subresource == "scale" else old
            patched, warnings = self.decode(request, t, patch.apply_patch(content_type, target, body,
                                                                          self.definition(t)))
            new = self.admission.changed_object(t, old, patched, request["user"])
            self.record_update(request, t, old, new)
            rv = (patched.get("metadata") or {}).get("resourceVersion")
            answer = await self.store_update(t, new, resource_version(rv) if pinned else
                                             int(old["metadata"]["resourceVersion"]))
            answer.headers.update(warned(warnings) or {})
            return answer

        return await (attempt() if pinned else retry_stale(attempt))

    async def pod_action(self, request: web.Request, t: Target) -> web.Response:
        """POST pods/NAME/binding (the scheduler's) and pods/NAME/eviction (kubectl drain's)."""
        body, _ = self.decode(request, t, await self.body(request), EVICTION if t.subresource == "eviction" else BINDING)
        if t.subresource == "eviction":
            opts = deletion.options(body.get("deleteOptions"), {})
            await eviction.evict(self.objects, t.namespace, t.name,
                                 lambda: self.delete_one(t.res, t.namespace, t.name, opts))
            return reply(subresources.success(), 201)

        async def bind() -> web.Response:
            pod = await self.objects.get(t.res, t.namespace, t.name)
            new = subresources.bound(pod, body)  # 409 if bound already: not a race to retry
            await self.objects.update(t.res, new, int(pod["metadata"]["resourceVersion"]))
            return reply(subresources.success(), 201)

        return await retry_stale(bind)

    async def delete_options(self, request: web.Request, t: Target) -> dict:
        """The request's DeleteOptions: its body, if any, with the query's options."""
        body = {}
        sent = await self.body(request) if (await request.read()).strip() else None
        if sent is not None:  # JSON null is no options, as kube-apiserver reads it
            body, _ = self.decode(request, t, sent, DELETE_OPTIONS)
            if body.get("dryRun"):  # kubectl delete --dry-run=server says so here
                DRY_RUN.set(dry_run(body["dryRun"]))
        return deletion.options(body, request.query)

    async def review(self, request: web.Request, t: Target) -> web.Response:
        body, _ = self.decode(request, t, await self.body(request))
        return reply(await reviews.review(t.res, body, request["user"], self.authorizer), 201)

    async def token_request(self, request: web.Request, t: Target) -> web.Response:
        if self.sa_keys is None:
            raise ApiError(503, "this master has no --service-account-key-file: it cannot sign service account "
                                "tokens")
        body, _ = self.decode(request, t, await self.body(request), TOKEN_REQUEST)
        return reply(await reviews.token_request(self.objects, self.sa_keys, t.namespace, t.name, body,
                                                 request["user"]), 201)

    async def delete(self, request: web.Request, t: Target) -> web.Response:
        return reply(await self.delete_one(t.res, t.namespace, t.name, await self.delete_options(request, t)))

    async def delete_one(self, res: Resource, namespace: str | None, name: str, opts: dict | None = None) -> dict:
        """Remove the object, or mark it (deletion.plan); a Service gives back its ClusterIP."""
        if res.kind == "Namespace" and name in DEFAULT_NAMESPACES:
            raise ApiError(403, f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                           reason="Forbidden", details={"name": name, "kind": "namespaces"})

        async def attempt() -> dict:
            obj = await self.objects.get(res, namespace, name)
            deletion.check_preconditions(res, obj, opts or {})
            rv = int(obj["metadata"]["resourceVersion"])
            marked = deletion.plan(res, obj, opts or {})
            if marked is obj:
                return obj
            if marked is not None:
                return await self.objects.update(res, marked, rv)
            release = self.services.claims(obj) if res.kind == "Service" else ()
            return await self.objects.delete(res, namespace, name, rv, release)

        return await retry_stale(attempt)

    async def delete_collection(self, request: web.Request, t: Target) -> web.Response:
        opts = await self.delete_options(request, t)  # for each object
        opts.pop("preconditions", None)  # preconditions name one object, not a collection
        items, _ = await self.objects.list(t.res, t.namespace)
        deleted = []
        for obj in self.select(t.res, items, request.query):
            try:
                deleted.append(await self.delete_one(t.res, t.namespace, obj["metadata"]["name"], opts))
            except ApiError as exc:
                if exc.code != 404:
                    raise
        return reply({"kind": f"{t.res.kind}List", "apiVersion": t.res.group_version,
                      "metadata": {"resourceVersion": str(self.objects.revision)}, "items": deleted})

    async def watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        return await watching.serve(request, res=t.res, namespace=t.namespace, objects=self.objects, hub=self.hub)

    # -- start-up -------------------------------------------------------------------------

    async def ensure_defaults(self) -> None:
        """What every cluster has from the start: the namespaces default, kube-system, kube-public and
        kube-node-lease, and the bootstrap roles and bindings (api/bootstrap_policy.py). Any master may create
        them; each create is a compare-and-swap, so one wins and the others find it there."""
        rbac = "rbac.authorization.k8s.io"
        pending = [(lookup("", "v1", "namespaces"), {"metadata": {"name": name}}) for name in DEFAULT_NAMESPACES]
        pending += [(lookup(rbac, "v1", "clusterroles"), r) for r in bootstrap_policy.cluster_roles()]
        pending += [(lookup(rbac, "v1", "clusterrolebindings"), b) for b in bootstrap_policy.cluster_role_bindings()]
        while pending:
            res, body = pending[0]
            try:
                try:
                    await self.admission.create(res, self.admission.new_object(res, body, None))
                except ApiError as exc:
                    if exc.reason != "AlreadyExists":
                        raise
                    await self.reconcile_role(res, body)
                pending.pop(0)
            except ApiError as exc:
                if exc.code == 409:  # another master reconciled it meanwhile: look again
                    continue
                log.error("could not create the default %s %s: %s", res.kind, body["metadata"]["name"], exc)
                pending.pop(0)
            except KVFailure:
                await asyncio.sleep(0.5)  # no quorum yet

    async def reconcile_role(self, res: Resource, default: dict) -> None:
        """A bootstrap ClusterRole from an older raftkube gets the rules it lacks (those added since are kept), unless
        an administrator set its annotation rbac.authorization.kubernetes.io/autoupdate to "false"."""
        if res.kind != "ClusterRole":
            return
        current = await self.objects.get(res, None, default["metadata"]["name"])
        if (current["metadata"].get("annotations") or {}).get(bootstrap_policy.AUTOUPDATE) != "true":
            return
        missing = [r for r in default["rules"] if r not in (current.get("rules") or [])]
        if missing:
            await self.objects.update(res, {**current, "rules": [*(current.get("rules") or []), *missing]},
                                      int(current["metadata"]["resourceVersion"]))


@functools.cache
def _openapi_v3(group: str, version: str) -> bytes | None:
    document = openapi.document_v3(group, version)
    return None if document is None else orjson.dumps(document)


@functools.cache
def _openapi_v2() -> bytes:
    return orjson.dumps(openapi.document_v2())


def warned(messages: list[str]) -> dict[str, str] | None:
    """Warning headers (RFC 7234 form, as kube-apiserver sends them), or None."""
    if not messages:
        return None
    quoted = (m.replace("\\", "\\\\").replace('"', '\\"') for m in messages)
    return {"Warning": ", ".join(f'299 - "{m}"' for m in quoted)}


def dry_run(values: list[str]) -> bool:
    """Whether a request asks for dryRun=All (from the query, or DeleteOptions): its writes are then evaluated,
    not proposed (api/storage.py DRY_RUN)."""
    unsupported = [v for v in values if v != "All"]
    if unsupported:
        raise errors.bad_request(f'dryRun: Unsupported value: "{unsupported[0]}": supported values: "All"')
    return bool(values)


def pins_version(content_type: str, body: Any) -> bool:
    """Does the patch itself name a resourceVersion? Then a conflict is the client's to see; otherwise the server
    retries the patch on the object as it now is (as kube-apiserver does for kubectl label, scale, set image)."""
    if content_type == patch.JSON_PATCH:
        return any(isinstance(op, dict) and op.get("path") == "/metadata/resourceVersion" for op in body or [])
    return bool(((body.get("metadata") or {}) if isinstance(body, dict) else {}).get("resourceVersion"))


def resource_version(text: Any) -> int:
    """A resourceVersion a client sent, to compare-and-swap on; 400 if it is not one of ours."""
    if not isinstance(text, str) or not text.isdigit():
        raise errors.bad_request(f"metadata.resourceVersion: Invalid value: {text!r}: must be a resourceVersion "
                                 "this server gave out (a decimal number)")
    return int(text)


def make_continue_token(revision: int, start: bytes) -> str:
    """Where the next page starts, and the revision every page of this list is read at."""
    return base64.urlsafe_b64encode(orjson.dumps({"rv": revision, "start": start.decode()})).decode()


def continue_token(token: str | None) -> tuple[int, bytes]:
    if not token:
        return 0, b""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), data["start"].encode()
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise errors.bad_request(f"invalid continue token {token[:40]!r}") from None
