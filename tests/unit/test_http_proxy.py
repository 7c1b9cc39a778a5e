"""pods/proxy and services/proxy (api/http_proxy.py): how a name is read, which headers reach the pod, and which
addresses a master will dial for a pod."""
import pytest
from multidict import CIMultiDict

from api import http_proxy
from api.errors import ApiError, not_found


def test_a_name_is_name_name_port_or_scheme_name_port():
    split = http_proxy.split_scheme_name_port
    assert split("web") == ("http", "web", "")
    assert split("web:8080") == ("http", "web", "8080")
    assert split("https:web:443") == ("https", "web", "443")
    assert split("web:http") == ("http", "web", "http")
    for bad in ("ftp:web:21", ":8080", "a:b:c:d", ""):
        assert split(bad) is None


def test_the_callers_credentials_and_hop_by_hop_headers_stay_behind():
    sent = {"Authorization": "Bearer secret", "Impersonate-User": "admin", "Impersonate-Group": "system:masters",
            "Connection": "close", "Host": "api:6443", "Transfer-Encoding": "chunked", "Accept": "text/html",
            "Cookie": "a=b", "X-Trace": "1"}
    assert list(http_proxy.forwarded_headers(sent).items()) == [("Accept", "text/html"), ("Cookie", "a=b"),
                                                                 ("X-Trace", "1")]
    twice = CIMultiDict([("X-Forwarded-For", "a"), ("X-Forwarded-For", "b")])
    assert http_proxy.forwarded_headers(twice).getall("X-Forwarded-For") == ["a", "b"]


class Objects:
    """The two objects a pod's address depends on."""

    def __init__(self, pod_ip: str | None, pod_cidr: str | None) -> None:
        self.pod = {"metadata": {"name": "web"}, "spec": {"nodeName": "n1", "containers": [
            {"name": "main", "ports": [{"containerPort": 8080}]}]}, "status": {"podIP": pod_ip} if pod_ip else {}}
        self.node = {"metadata": {"name": "n1"}, "spec": {"podCIDR": pod_cidr} if pod_cidr else {}}

    async def get(self, res, namespace, name):
        if res.plural == "pods" and name == "web":
            return self.pod
        if res.plural == "nodes" and name == "n1":
            return self.node
        raise not_found(res.plural, name)


async def test_a_pod_is_dialled_at_its_ip_inside_its_nodes_pod_range():
    objects = Objects("127.86.1.5", "127.86.1.0/24")
    assert await http_proxy._pod_address(objects, "default", "web", "") == ("127.86.1.5", "8080")
    assert await http_proxy._pod_address(objects, "default", "web", "9000") == ("127.86.1.5", "9000")


@pytest.mark.parametrize("pod_ip,pod_cidr,port,says", [
    ("127.0.0.1", "127.86.1.0/24", "", "outside the pod range 127.86.1.0/24"),  # a master's own ports
    ("127.86.1.5", None, "", "and no pod range (spec.podCIDR) of its node n1"),
    (None, "127.86.1.0/24", "", "has no IP yet"),
    ("127.86.1.5", "127.86.1.0/24", "http", "a pod's port is a number"),
    ("127.86.1.5", "127.86.1.0/24", "70000", "a pod's port is a number"),
])
async def test_any_other_address_is_refused(pod_ip, pod_cidr, port, says):
    with pytest.raises(ApiError) as refused:
        await http_proxy._pod_address(Objects(pod_ip, pod_cidr), "default", "web", port)
    assert refused.value.code == 400 and says in refused.value.message
