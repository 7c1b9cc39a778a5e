"""Property-based fuzzing of both APIs (hypothesis): whatever an outsider sends, no 5xx, nothing changed by a
request that failed, and the masters keep their leader.

Generated: every route of the kube API (each resource and subresource, discovery, OpenAPI, health) and of the
KV API, with generated query strings, content types and bodies: any JSON value, real objects with one field
replaced by any value, and protobuf bytes. Left out: what may legitimately change the cluster itself
(membership changes, compaction, the failpoints), since a generated request could succeed at them.
Examples are derandomized, so a run in CI is the same run every time.
"""
import json
import ssl
import string
import urllib.error
import urllib.parse
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from api.registry import RESOURCES
from tests.integration.cluster import Cluster

JSON = st.recursive(st.none() | st.booleans() | st.integers(min_value=-(1 << 70), max_value=1 << 70)
                    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                 max_size=4),
                    max_leaves=12)
NAMES = st.sampled_from(["x", "fuzz", "a-b", "UPPER", "", "default", "kube-system"])
SAMPLES = {
    "Pod": {"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}],
                                     "env": [{"name": "A", "value": "b"}]}], "restartPolicy": "Always",
                     "tolerations": [{"key": "k", "operator": "Exists"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0}]}},
    "Deployment": {"spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                            "template": {"metadata": {"labels": {"a": "b"}},
                                         "spec": {"containers": [{"name": "c", "image": "i"}]}}}},
    "Service": {"spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"a": "b"}, "type": "NodePort"}},
    "ConfigMap": {"data": {"k": "v"}},
    "Event": {"involvedObject": {"kind": "Pod", "name": "x"}, "reason": "R", "count": 1,
              "lastTimestamp": "2024-01-01T00:00:00Z"},
    "Lease": {"spec": {"holderIdentity": "h", "leaseDurationSeconds": 10}},
    "Job": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}}}},
}
KUBE_TYPES = ["application/json", "application/yaml", "application/merge-patch+json",
              "application/json-patch+json", "application/strategic-merge-patch+json",
              "application/apply-patch+yaml", "application/vnd.kubernetes.protobuf", "text/plain"]
QUERY_KEYS = ["watch", "resourceVersion", "timeoutSeconds", "labelSelector", "fieldSelector", "limit", "continue",
              "fieldManager", "fieldValidation", "gracePeriodSeconds", "propagationPolicy", "force", "dryRun",
              "allowWatchBookmarks", "follow", "tailLines", "container", "previous"]
KV_ROUTES = ["/v3/kv/range", "/v3/kv/put", "/v3/kv/deleterange", "/v3/kv/txn", "/v3/watch", "/v3/lease/grant",
             "/v3/lease/revoke", "/v3/lease/keepalive", "/v3/lease/timetolive", "/v3/lease/leases",
             "/v3/maintenance/status", "/v3/cluster/member/list", "/health", "/version", "/metrics"]


def _paths(res) -> list[str]:
    base = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
    scoped = f"{base}/namespaces/default/{res.plural}" if res.namespaced else f"{base}/{res.plural}"
    out = [scoped, f"{scoped}/x"] + [f"{scoped}/x/{sub}" for sub in res.subresources]
    return out + ([f"{base}/{res.plural}"] if res.namespaced else [])


KUBE_PATHS = sorted({p for res in RESOURCES for p in _paths(res)} | {
    "/api", "/apis", "/api/v1", "/apis/apps/v1", "/version", "/openapi/v3", "/openapi/v3/api/v1",
    "/openapi/v3/apis/apps/v1", "/healthz", "/readyz", "/livez", "/metrics", "/dashboard", "/dashboard/masters",
    "/api/v1/namespaces/default/nothings", "/apis/nope/v1/things"})


@st.composite
def mutated_object(draw) -> dict:
    """A real object of some kind with one of its fields (at any depth) replaced by any JSON value."""
    kind = draw(st.sampled_from(sorted(SAMPLES)))
    obj = json.loads(json.dumps({"metadata": {"name": draw(NAMES), "labels": {"a": "b"}}, **SAMPLES[kind]}))
    holders = []
    stack = [obj]
    while stack:
        node = stack.pop()
        keys = range(len(node)) if isinstance(node, list) else list(node)
        holders.extend((node, k) for k in keys)
        stack.extend(v for v in (node[k] for k in keys) if isinstance(v, (dict, list)))
    node, key = draw(st.sampled_from(holders))
    node[key] = draw(JSON)
    return obj


BODIES = st.one_of(JSON.map(lambda v: json.dumps(v).encode()), mutated_object().map(lambda o: json.dumps(o).encode()),
                   st.binary(max_size=64).map(lambda b: b"k8s\x00" + b), st.binary(max_size=64),
                   st.integers(1, 5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),  # deep nesting
                   st.text(alphabet=string.printable, max_size=80).map(str.encode))
QUERY = st.dictionaries(st.sampled_from(QUERY_KEYS), st.text(max_size=12) | st.sampled_from(["1", "true", "0", "-1"]),
                        max_size=3)
SETTINGS = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("fuzz") / "cluster"), 3)
    try:
        yield c
    finally:
        c.stop()


def send(url: str, method: str, body: bytes | None, headers: dict, context=None) -> tuple[int, bytes]:
    """One request; a streaming answer (a watch) is judged by its status line alone."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            if r.headers.get("Transfer-Encoding") == "chunked":
                return r.status, b""
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def revision(cluster) -> int:
    status, body = send(cluster.master("m1")["kv"] + "/v3/kv/range", "POST",
                        json.dumps({"key": "AA==", "range_end": "AA==", "count_only": True}).encode(), {},
                        cluster.kv_tls())
    assert status == 200, body
    return int(json.loads(body)["header"]["revision"])


def leader_and_term(cluster) -> tuple[str, str]:
    status, body = send(cluster.master("m1")["kv"] + "/v3/maintenance/status", "POST", b"{}", {}, cluster.kv_tls())
    data = json.loads(body)
    return data["leader"], data["raftTerm"]


@pytest.fixture(scope="module")
def before(cluster):
    """The leader and term before the fuzzing: they must be the same after it."""
    first = leader_and_term(cluster)
    yield first
    assert leader_and_term(cluster) == first, "the fuzzing cost the cluster its leader"


def check(cluster, status: int, body: bytes, revision_before: int, what: str) -> None:
    assert status < 500, f"{what} -> {status}: {body[:300]!r}"
    if status >= 400:
        assert revision(cluster) == revision_before, f"{what} failed with {status} but changed the store"


@SETTINGS
@given(method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]), path=st.sampled_from(KUBE_PATHS),
       query=QUERY, content_type=st.sampled_from(KUBE_TYPES) | st.text(string.ascii_letters + "/+;=-. ", max_size=30),
       body=BODIES)
def test_the_kube_api_never_answers_5xx_and_failures_change_nothing(cluster, before, method, path, query,
                                                                      content_type, body):
    url = cluster.master("m2")["api"] + path + ("?" + urllib.parse.urlencode(query) if query else "")
    headers = {"Authorization": f"Bearer {cluster.token}", "Content-Type": content_type or "application/json"}
    start = revision(cluster)
    status, answer = send(url, method, None if method == "GET" else body, headers, ssl.create_default_context(
        cafile=cluster.ca))
    check(cluster, status, answer, start, f"{method} {path}?{query} ({content_type}) {body[:120]!r}")


@SETTINGS
@given(path=st.sampled_from(KV_ROUTES), body=BODIES | JSON.map(lambda v: json.dumps({"key": v}).encode()))
def test_the_kv_api_never_answers_5xx_and_failures_change_nothing(cluster, before, path, body):
    start = revision(cluster)
    method = "GET" if path in ("/health", "/version", "/metrics") else "POST"
    status, answer = send(cluster.master("m3")["kv"] + path, method, None if method == "GET" else body, {},
                          cluster.kv_tls())
    check(cluster, status, answer, start, f"{path} {body[:120]!r}")
