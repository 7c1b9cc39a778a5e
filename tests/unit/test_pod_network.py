"""host-gw routes (node/pod_network.py): one per other node, from its Node object, only inside the cluster CIDR."""
import subprocess
import sys

from node.pod_network import wanted_routes

CLUSTER = "10.244.0.0/16"


def node(name, cidr, ip):
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
            "status": {"addresses": [{"type": "Hostname", "address": name}] + (
                [{"type": "InternalIP", "address": ip}] if ip else [])}}


def test_each_other_node_pod_cidr_goes_via_its_internal_ip():
    nodes = [node("n1", "10.244.1.0/24", "10.89.0.21"), node("n2", "10.244.2.0/24", "10.89.0.22"),
             node("n3", "10.244.3.0/24", "10.89.0.23")]
    assert wanted_routes(nodes, me="n1", cluster_cidr=CLUSTER) == {"10.244.2.0/24": "10.89.0.22",
                                                                    "10.244.3.0/24": "10.89.0.23"}


def test_nodes_without_a_usable_cidr_or_address_get_no_route():
    nodes = [node("no-cidr", None, "10.89.0.30"), node("no-ip", "10.244.4.0/24", None),
             node("loopback", "127.1.7.0/24", "127.1.7.1"),  # a `raftkube up` node: not on this network
             node("odd", "not-a-cidr", "10.89.0.31"), node("inside", "10.244.5.0/24", "10.244.9.9")]
    assert wanted_routes(nodes, me="n1", cluster_cidr=CLUSTER) == {}


def test_route_addresses_decode_in_a_process_that_loaded_pysyncobj():
    """pysyncobj replaces socket.inet_ntop with a Windows-only one; the pod network puts the real one back before
    pyroute2 takes it (a fresh interpreter, pysyncobj's transport loaded first)."""
    check = ("import socket, pysyncobj.tcp_connection, node.pod_network; "
             "print(socket.inet_ntop(socket.AF_INET, bytes([10, 244, 2, 0])))")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "10.244.2.0", out.stderr
