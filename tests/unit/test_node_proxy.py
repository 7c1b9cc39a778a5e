"""kube-proxy's pure parts (node/proxy.py): which addresses to listen on, and where each Service port leads."""
from node.proxy import backends, listen_addresses

SVC = {"metadata": {"name": "web", "namespace": "shop"}, "spec": {
    "type": "NodePort", "clusterIP": "127.96.0.9",
    "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP"},
              {"name": "admin", "port": 9000}]}}
EP = {"metadata": {"name": "web", "namespace": "shop"}, "subsets": [
    {"addresses": [{"ip": "127.1.1.2"}, {"ip": "127.1.1.3"}], "notReadyAddresses": [{"ip": "127.1.1.4"}],
     "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}]}]}


def test_listen_on_cluster_ip_and_node_port_tcp_only():
    want = listen_addresses({"shop/web": SVC}, "127.1.1.1")
    assert want == {("127.96.0.9", 80): ("shop/web", "http"), ("127.1.1.1", 30080): ("shop/web", "http"),
                    ("127.96.0.9", 9000): ("shop/web", "admin")}
    headless = {"metadata": {"name": "h", "namespace": "x"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}
    assert listen_addresses({"x/h": headless}, "127.1.1.1") == {}


def test_backends_by_port_name_ready_only():
    routes = backends({"shop/web": SVC}, {"shop/web": EP})
    assert routes[("shop/web", "http")] == [("127.1.1.2", 8080), ("127.1.1.3", 8080)]
    assert routes[("shop/web", "admin")] == [("127.1.1.2", 9090), ("127.1.1.3", 9090)]
    assert backends({"shop/web": SVC}, {})[("shop/web", "http")] == []


def test_a_single_unnamed_port_matches_the_single_endpoint_port():
    svc = {"metadata": {"name": "a", "namespace": "d"}, "spec": {"clusterIP": "127.96.0.1", "ports": [{"port": 80}]}}
    ep = {"metadata": {"name": "a", "namespace": "d"}, "subsets": [{"addresses": [{"ip": "127.1.1.2"}],
                                                                   "ports": [{"port": 8080}]}]}
    assert backends({"d/a": svc}, {"d/a": ep}) == {("d/a", ""): [("127.1.1.2", 8080)]}


def test_services_and_endpoints_of_odd_shapes_are_skipped():
    odd = {"metadata": {"name": "odd", "namespace": "d"}, "spec": {"clusterIP": "127.96.0.2", "ports": 80}}
    also = {"metadata": {"name": "also", "namespace": "d"}, "spec": "nonsense"}
    assert listen_addresses({"d/odd": odd, "d/also": also, "shop/web": SVC}, "127.1.1.1")[("127.96.0.9", 80)]
    bad_ep = {"metadata": {"name": "web", "namespace": "shop"}, "subsets": [{"addresses": ["x"], "ports": "y"}, 3]}
    assert backends({"shop/web": SVC}, {"shop/web": bad_ep})[("shop/web", "http")] == []
