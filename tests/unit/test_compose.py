"""docker-compose.yml is `raftkube compose --masters 3`'s output, and its commands are valid."""
import argparse
import ipaddress
import os
import shutil
import subprocess

import pytest
import yaml

from raftkube import compose, master, node

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_committed_files_are_the_generated_ones():
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        assert f.read() == compose.compose_file(3), "run `raftkube compose --masters 3` and commit the result"
    with open(os.path.join(ROOT, "compose", "haproxy.cfg")) as f:
        assert f.read() == compose.haproxy_config(3)


def _parse(module, command):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(command[1:])


def test_each_master_command_is_one_raftkube_master_accepts():
    for masters in (3, 5, 7):
        doc = yaml.safe_load(compose.compose_file(masters))
        ms = [n for n in doc["services"] if n.startswith("m")]
        assert ms == [f"m{i + 1}" for i in range(masters)]
        for name in ms:
            service = doc["services"][name]
            args = _parse(master, service["command"])
            assert args.name == name and len(args.peers.split(",")) == masters - 1
            assert args.ca_file and args.service_cluster_ip_range == "127.96.0.0/16"  # kube-proxy's loopback range
            assert set(service["secrets"]) == {*compose.SECRETS, *compose.KV_SECRETS, *compose.master_secrets(name)}
            assert set(service["secrets"]) <= set(doc["secrets"])
            assert args.kv_cert_file == f"/run/secrets/kv_{name}_crt" and args.kv_client_cert_auth  # KV TLS on
            assert args.kv_trusted_ca_file == args.etcd_cafile == "/run/secrets/kv_ca_crt" and args.etcd_certfile
            assert service["ports"] == [f"127.0.0.1:{compose.kv_port(name)}:2379"]  # the host's loopback only
        assert [s for s in doc["services"] if "build" in doc["services"][s]] == ["m1"]  # one image, built once
        for name in compose.NODES:
            service = doc["services"][name]
            args = _parse(node, service["command"])
            assert args.name == name and len(args.server.split(",")) == masters
            assert args.pod_network == "host-gw" and args.node_ip == service["networks"]["cluster"]["ipv4_address"]
            assert set(service["secrets"]) <= set(doc["secrets"])
            assert service["cap_add"] == ["NET_ADMIN"] and service["entrypoint"][0] == "setpriv"
        assert doc["services"]["haproxy"]["ports"] == ["127.0.0.1:6443:6443"]
        assert compose.haproxy_config(masters).count(" check check-ssl") == 2 * masters  # ready and alive


def test_every_container_has_its_own_address_and_every_node_its_own_pod_network():
    doc = yaml.safe_load(compose.compose_file(7))
    subnet = ipaddress.ip_network(doc["networks"]["cluster"]["ipam"]["config"][0]["subnet"])
    addresses = [ipaddress.ip_address(s["networks"]["cluster"]["ipv4_address"]) for s in doc["services"].values()]
    assert len(set(addresses)) == len(addresses) and all(a in subnet for a in addresses)
    cidrs = [ipaddress.ip_network(compose.pod_cidr(n)) for n in compose.NODES]
    assert len(set(cidrs)) == len(cidrs)
    assert all(c.subnet_of(ipaddress.ip_network(compose.CLUSTER_CIDR)) for c in cidrs)


def test_secrets_and_a_kubeconfig_for_the_host(tmp_path):
    """Readable by the containers' user inside a folder only the owner enters; kept when made again."""
    secrets = tmp_path / "s"
    compose.make_secrets(str(secrets))
    made = set(os.listdir(secrets))
    assert {"cluster.secret", "tokens.csv", "server.crt", "server.key", "ca.crt", "kubeconfig", "n1.token",
            "n2.token"} <= made
    kv = set(os.listdir(secrets / compose.KV_DIR))  # the KV CA, the API servers', the operator's, each master's
    assert {"ca.crt", "apiserver-etcd-client.crt", "operator.key", "server-m1.crt", "server-m7.key"} <= kv
    assert oct(os.stat(secrets).st_mode & 0o777) == "0o700"
    assert oct(os.stat(secrets / "server.key").st_mode & 0o777) == "0o644"
    assert oct(os.stat(secrets / "kubeconfig").st_mode & 0o777) == "0o600"
    before = (secrets / "cluster.secret").read_text(), (secrets / "server.crt").read_text()
    compose.make_secrets(str(secrets))
    assert ((secrets / "cluster.secret").read_text(), (secrets / "server.crt").read_text()) == before


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (.ci/run installs it)")
@pytest.mark.parametrize("masters", [3, 5, 7])
def test_haproxy_accepts_the_config(tmp_path, masters):
    """`haproxy -c`: valid, even where the masters' names do not resolve (yet: a killed container's)."""
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(compose.haproxy_config(masters))
    out = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
