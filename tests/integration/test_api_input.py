"""Bad input to the kube API: always a clear 4xx Status, never a 500, and nothing stored."""
import asyncio
import json

import aiohttp
import pytest

from tests.integration.cluster import Cluster

POD = "/api/v1/namespaces/default/pods"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("input") / "cluster"), 3)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
async def api(cluster):
    """A session that talks to one master as the admin, over the cluster's TLS."""
    async with aiohttp.ClientSession(base_url=cluster.master("m2")["api"],
                                     headers={"Authorization": f"Bearer {cluster.token}"},
                                     connector=aiohttp.TCPConnector(ssl=cluster.tls())) as session:
        yield session


async def call(api, method, path, body, content_type="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    async with api.request(method, path, data=data, headers={"Content-Type": content_type}) as r:
        return r.status, await r.json(content_type=None)


def pod(**over):
    return {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "i"}]}, **over}


BAD_CREATES = [
    (POD, {"metadata": "str"}), (POD, {"metadata": {"name": 5}}), (POD, [1, 2]), (POD, "str"),
    (POD, {"metadata": {"name": "x", "labels": ["a"]}}), (POD, {"metadata": {"name": "x", "labels": {"a": 5}}}),
    (POD, pod(spec=[])), (POD, pod(spec={"containers": "no"})), (POD, pod(spec={"containers": [5]})),
    (POD, pod(spec={"containers": [{"name": "c", "image": "i", "ports": "x"}]})),
    (POD, pod(spec={"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 0}]}]})),
    (POD, pod(spec={"containers": [], "initContainers": "x"})),
    (POD, {**pod(), "metadata": {"name": "x", "finalizers": "x"}}),
    (POD, {**pod(), "metadata": {"name": "x", "ownerReferences": [{"kind": "A"}]}}),
    (POD, {**pod(), "metadata": {"name": "UPPER"}}), (POD, {**pod(), "metadata": {}}),
    (POD, {**pod(), "kind": "Service"}), (POD, {**pod(), "metadata": {"name": "x", "namespace": "other"}}),
    (DEPLOY, {"metadata": {"name": "d"}, "spec": {"template": "x"}}),
    (DEPLOY, {"metadata": {"name": "d"}, "spec": {"strategy": "fast", "template": {}}}),
    (DEPLOY, {"metadata": {"name": "d"}, "spec": {"replicas": -1, "selector": {"matchLabels": {"a": "b"}},
                                                   "template": {"metadata": {"labels": {"a": "b"}},
                                                                "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
    ("/api/v1/namespaces/default/services", {"metadata": {"name": "s"}, "spec": {"ports": "x"}}),
    ("/api/v1/namespaces/default/services", {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 99999}]}}),
    ("/api/v1/namespaces/default/services", {"metadata": {"name": "s"}, "spec": {"clusterIP": "1.2.3.4",
                                                                                  "ports": [{"port": 80}]}}),
]


@pytest.mark.parametrize("path,body", BAD_CREATES)
async def test_a_bad_create_is_a_4xx_and_stores_nothing(api, path, body):
    status, answer = await call(api, "POST", path, body)
    assert 400 <= status < 500, answer
    assert answer["kind"] == "Status" and answer["message"]
    listed = await call(api, "GET", path, None)
    assert [o["metadata"]["name"] for o in listed[1]["items"]] in ([], ["kubernetes"])  # the masters' Service only


@pytest.mark.parametrize("method,path,body,content_type", [
    ("POST", POD, b"{not json", "application/json"),
    ("POST", POD, b"\x00\x01", "application/vnd.kubernetes.protobuf"),
    ("PATCH", POD + "/x", b"a: [", "application/apply-patch+yaml"),
    ("PATCH", POD + "/x", {"spec": 1}, "application/x-unknown"),
    ("GET", POD + "?labelSelector=a+in+b", None, "application/json"),
    ("GET", POD + "?continue=xyz&limit=1", None, "application/json"),
    ("GET", POD + "?watch=true&resourceVersion=abc", None, "application/json"),
    ("DELETE", POD + "/x", {"gracePeriodSeconds": "soon"}, "application/json"),
    ("POST", POD, b"x" * (3 << 20 + 1), "application/json"),
    ("GET", "/api/v1/nothings", None, "application/json"),
    ("PUT", POD + "/x/binding", {"target": {"name": "n1"}}, "application/json"),
    ("PATCH", POD + "/x/eviction", {}, "application/merge-patch+json"),
])
async def test_malformed_requests_get_a_clear_4xx(api, method, path, body, content_type):
    status, answer = await call(api, method, path, body if body is not None else b"", content_type)
    assert 400 <= status < 500, answer


@pytest.mark.parametrize("version", ["v2", "v2beta1"])
async def test_aggregated_discovery_answers_with_the_exact_content_type(api, version):
    accept = (f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList,"
              "application/json")
    async with api.get("/apis", headers={"Accept": accept}) as r:
        assert r.headers["Content-Type"] == f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
        groups = {g["metadata"]["name"]: g for g in (await r.json(content_type=None))["items"]}
    async with api.get("/api", headers={"Accept": "application/json"}) as r:
        assert (await r.json())["kind"] == "APIVersions"  # legacy when aggregated is not asked
    apps = {r["resource"]: r for r in groups["apps"]["versions"][0]["resources"]}
    assert apps["deployments"]["scope"] == "Namespaced"
    assert {"subresource": "scale", "verbs": ["get", "patch", "update"],
            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}} in apps["deployments"]["subresources"]


def deep(levels: int) -> bytes:
    """A JSON object nested `levels` deep (as text: Python's own JSON encoder recurses)."""
    return b'{"a":' * levels + b"1" + b"}" * levels


BOMB = b"""apiVersion: v1
kind: ConfigMap
metadata: {name: x}
data:
  a: &a "lol"
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""
MERGE, JSON_PATCH, SMP, YAML = ("application/merge-patch+json", "application/json-patch+json",
                                "application/strategic-merge-patch+json", "application/apply-patch+yaml")
X = POD + "/x"

# Each of these answered 500 once (and the status one made every later `kubectl get pods` answer 500 too).
ONCE_500 = [
    ("PATCH", X, {"metadata": {"resourceVersion": "abc"}}, MERGE),
    ("PATCH", X, [{"op": "move", "path": "/metadata/labels"}], JSON_PATCH),
    ("PATCH", X, [{"op": "add", "path": 5, "value": 1}], JSON_PATCH),
    ("PATCH", X, {"metadata": {"$deleteFromPrimitiveList/finalizers": 5}}, SMP),
    ("PATCH", X, b'{"metadata":{"annotations":' + deep(1000) + b"}}", MERGE),
    ("PATCH", X + "?fieldManager=t", b"a: " + b"[" * 2000 + b"]" * 2000, YAML),
    ("PATCH", X + "?fieldManager=t", BOMB, YAML),
    ("PATCH", X, [{"op": "copy", "from": "/metadata", "path": f"/metadata/m{i}"} for i in range(20)]
     + [{"op": "add", "path": "/metadata/annotations", "value": {"a": "x" * 1000}}], JSON_PATCH),
    ("DELETE", X, {"preconditions": "x"}, "application/json"),
    ("POST", X + "/eviction", [1, 2], "application/json"),
    ("GET", POD + "?limit=1&continue=eyJ4Ijp9", b"", "application/json"),
    ("POST", POD, b"k8s\x00\x0a\x02\x08\x01", "application/vnd.kubernetes.protobuf"),
    ("PUT", X + "/status", {**pod(), "status": {"containerStatuses": ["x"]}}, "application/json"),
    ("PATCH", X + "/status", {"status": {"containerStatuses": ["x"]}}, MERGE),
    ("POST", "/api/v1/namespaces/default/events", {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod"},
                                                    "lastTimestamp": "yesterday"}, "application/json"),
    # a body of JSON null (found by test_fuzz.py): each of these read it as an object
    ("POST", X + "/eviction", b"null", "application/json"),
    ("POST", "/api/v1/namespaces/default/serviceaccounts/default/token", b"null", "application/json"),
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", b"null", "application/json"),
    ("DELETE", POD + "?labelSelector=none-such", b"[]", "application/json"),
]


async def test_a_delete_with_a_null_body_is_one_without_options(api, x):
    """kube-apiserver reads DeleteOptions of JSON null as none; a DELETE of a collection with it answered 500."""
    status, answer = await call(api, "DELETE", POD + "?labelSelector=none-such", b"null")
    assert status == 200 and answer["items"] == [], answer
    status, answer = await call(api, "DELETE", X + "?gracePeriodSeconds=0", b"null")
    assert status == 200, answer


@pytest.fixture
async def x(api):
    """Pod x, fresh for each test."""
    await call(api, "DELETE", X + "?gracePeriodSeconds=0", b"")
    status, created = await call(api, "POST", POD, pod())
    assert status == 201, created
    yield created
    await call(api, "DELETE", X + "?gracePeriodSeconds=0", b"")


@pytest.mark.parametrize("method,path,body,content_type", ONCE_500)
async def test_what_once_was_a_500_is_a_4xx_and_changes_nothing(api, x, method, path, body, content_type):
    status, answer = await call(api, method, path, body, content_type)
    assert 400 <= status < 500, answer
    assert answer["kind"] == "Status" and answer["message"]
    _, now = await call(api, "GET", X, b"")
    assert now.get("metadata", {}).get("resourceVersion") == x["metadata"]["resourceVersion"], now.get("message")
    table = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    async with api.get(POD, headers=table) as r:
        assert r.status == 200


async def test_events_with_fractions_and_offsets_in_their_times_are_stored_in_kubernetes_form(api):
    event = {"metadata": {"name": "offsets"}, "involvedObject": {"kind": "Pod", "name": "x"}, "reason": "R",
             "firstTimestamp": "2024-01-01T02:00:00.25+02:00", "lastTimestamp": "2024-01-01T00:00:01.5Z"}
    status, stored = await call(api, "POST", "/api/v1/namespaces/default/events", event)
    assert status == 201, stored
    assert (stored["firstTimestamp"], stored["lastTimestamp"]) == ("2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z")
    async with api.get("/api/v1/namespaces/default/events",
                       headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}) as r:
        assert r.status == 200


async def test_a_watch_with_a_bad_timeout_is_a_400_and_leaves_no_watcher_behind(api, cluster):
    async def watchers() -> float:
        async with aiohttp.ClientSession() as kv:
            async with kv.get(cluster.master("m2")["kv"] + "/metrics", ssl=cluster.kv_tls()) as r:
                text = await r.text()
        return float(next(line.split()[-1] for line in text.splitlines() if line.startswith("raftkube_store_watchers ")))

    before = await watchers()
    for _ in range(5):
        async with api.get(POD + "?watch=1&timeoutSeconds=abc") as r:
            assert r.status == 400
    assert await watchers() == before


@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True"])
async def test_watch_is_on_for_every_spelling_of_true_that_go_accepts(api, value):
    """kube-apiserver reads booleans with strconv.ParseBool: watch=True is a watch, not a list."""
    async with api.get(f"/api/v1/namespaces/default/configmaps?watch={value}&timeoutSeconds=1") as r:
        assert r.status == 200
        body = await r.read()
    assert b"ConfigMapList" not in body  # the watch ended after a second without events


@pytest.mark.parametrize("query", ["watch=yes", "watch=", "allowWatchBookmarks=on&watch=1", "watch=tRuE",
                                   "watch=1&timeoutSeconds=soon"])
async def test_a_watch_parameter_that_does_not_parse_is_a_400(api, query):
    status, answer = await call(api, "GET", f"/api/v1/namespaces/default/configmaps?{query}", b"")
    assert status == 400 and answer["kind"] == "Status" and answer["message"]


async def test_the_version_parses_as_numbers_and_names_raftkube_as_build_metadata(api):
    status, version = await call(api, "GET", "/version", b"")
    assert int(version["major"]) == 1 and int(version["minor"]) == 32
    assert version["gitVersion"] == "v1.32.0+raftkube"  # semver: build metadata does not lower the version


async def test_a_patch_without_a_resource_version_is_retried_by_the_server_on_a_conflict(api, x):
    """kubectl label, scale and set image send no resourceVersion: a concurrent writer must not turn them into a
    409 Conflict (the server reads the object again and re-applies the patch), while a patch that names a
    resourceVersion does get the conflict."""
    stop = asyncio.Event()

    async def writer():
        i = 0
        while not stop.is_set():
            i += 1
            await call(api, "PATCH", X + "/status", {"status": {"message": f"busy {i}"}}, MERGE)

    writers = [asyncio.create_task(writer()) for _ in range(4)]
    try:
        statuses = await asyncio.gather(*(call(api, "PATCH", X, {"metadata": {"labels": {f"n{i}": "x"}}}, SMP)
                                          for i in range(20)))
        assert [status for status, _ in statuses] == [200] * 20, statuses
        stale = x["metadata"]["resourceVersion"]
        status, _ = await call(api, "PATCH", X, {"metadata": {"resourceVersion": stale, "labels": {"n": "x"}}}, MERGE)
        assert status == 409
    finally:
        stop.set()
        await asyncio.gather(*writers)


async def test_a_dry_run_writes_nothing_and_the_next_request_on_the_connection_writes_for_real(api):
    cm = {"metadata": {"name": "dry"}, "data": {"a": "b"}}
    status, answer = await call(api, "POST", "/api/v1/namespaces/default/configmaps?dryRun=All", cm)
    assert status == 201 and answer["metadata"]["uid"]
    assert (await call(api, "GET", "/api/v1/namespaces/default/configmaps/dry", b""))[0] == 404
    status, _ = await call(api, "POST", "/api/v1/namespaces/default/configmaps", cm)  # same keep-alive connection
    assert status == 201
    assert (await call(api, "GET", "/api/v1/namespaces/default/configmaps/dry", b""))[0] == 200
    assert (await call(api, "POST", "/api/v1/namespaces/default/configmaps?dryRun=Some", cm))[0] == 400
    await call(api, "DELETE", "/api/v1/namespaces/default/configmaps/dry", b"")


async def test_health_lists_its_checks_as_kube_apiserver_does(api):
    async with api.get("/readyz?verbose") as r:
        assert r.status == 200 and await r.text() == "[+]ping ok\n[+]log ok\n[+]etcd ok\nreadyz check passed\n"
    for path, status, text in [("/healthz", 200, "ok"), ("/healthz/etcd", 200, "ok"), ("/livez/ping", 200, "ok"),
                               ("/readyz/nope", 404, "404 page not found\n")]:
        async with api.get(path) as r:
            assert (r.status, await r.text()) == (status, text), path
