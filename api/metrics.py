"""Prometheus metrics of the kube API: requests by verb, resource and code, latency, in-flight, watches.

The names follow kube-apiserver's (`apiserver_request_total`, `apiserver_request_duration_seconds`,
`apiserver_current_inflight_requests`), with the `raftkube_` prefix. `verb` is Kubernetes' own: GET, LIST,
WATCH, POST, PUT, PATCH, APPLY, DELETE, DELETECOLLECTION, or the HTTP method for paths that are not
resources (discovery, /version, /metrics; their `resource` is ""). `resource` is the plural with its
subresource (`pods/status`); it comes from the path the resource handler parsed (`request["target"]`),
so a request for an unknown path cannot create a new label value.

As in kvstore/metrics.py, a request only bumps plain ints and one lock-free histogram; the
Prometheus families are built when /metrics is scraped. /metrics on the API port asks for the bearer
token like every other path (kube-apiserver protects it too); Prometheus sends one with
`authorization: {credentials_file: ...}` in its scrape config. The KV port serves the same registry
without authentication, as etcd does on its client port.
"""
from __future__ import annotations

import time
from typing import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from api.query import parse_bool
from kvstore.metrics import Histogram, histogram_family, new_registry

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TARGET = "target"  # where ApiServer.resource leaves the parsed path for us
APPLY = "application/apply-patch+yaml"


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        self.requests: dict[tuple[str, str, str], int] = {}  # (verb, resource, code) -> count
        self.latency: dict[tuple[str, str], Histogram] = {}  # (verb, resource) -> seconds
        self.inflight = 0
        self.watches = 0
        self.registry.register(self)

    def done(self, verb: str, resource: str, code: int, seconds: float | None) -> None:
        key = (verb, resource, str(code))
        self.requests[key] = self.requests.get(key, 0) + 1
        if seconds is not None:
            h = self.latency.get(key[:2])
            if h is None:
                h = self.latency[key[:2]] = Histogram()
            h.observe(seconds)

    def collect(self):
        total = CounterMetricFamily("raftkube_apiserver_request", "kube API requests by verb, resource and "
                                    "HTTP code", labels=["verb", "resource", "code"])
        for labels, n in sorted(self.requests.items()):
            total.add_metric(list(labels), n)
        yield total
        yield histogram_family("raftkube_apiserver_request_duration_seconds",
                               "kube API request latency by verb and resource (watches left out)",
                               ["verb", "resource"], ((list(k), h) for k, h in sorted(self.latency.items())))
        yield GaugeMetricFamily("raftkube_apiserver_current_inflight_requests",
                                "kube API requests being served now (watches left out)", value=self.inflight)
        yield GaugeMetricFamily("raftkube_apiserver_open_watches", "kube API watch streams open now",
                                value=self.watches)


def verb_and_resource(request: web.Request) -> tuple[str, str]:
    """Kubernetes' verb and the resource label of a request that has been handled."""
    t = request.get(TARGET)
    method = request.method
    if t is None:
        return method, ""
    resource = f"{t.res.plural}/{t.subresource}" if t.subresource else t.res.plural
    if method == "GET" and t.name is None:
        return ("WATCH" if parse_bool(request.query.get("watch", "")) else "LIST"), resource
    if method == "DELETE" and t.name is None:
        return "DELETECOLLECTION", resource
    if method == "PATCH" and request.content_type == APPLY:
        return "APPLY", resource
    return method, resource


def middleware(metrics: ApiMetrics) -> Callable:
    """Outermost: it sees every answer, 401s and 404s included."""

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        watch = request.method == "GET" and bool(parse_bool(request.query.get("watch", "")))
        code = 500
        if watch:
            metrics.watches += 1
        else:
            metrics.inflight += 1
        started = time.perf_counter()
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        finally:
            if watch:
                metrics.watches -= 1
            else:
                metrics.inflight -= 1
            verb, resource = verb_and_resource(request)
            metrics.done(verb, resource, code, None if watch else time.perf_counter() - started)

    return measure
