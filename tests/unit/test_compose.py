"""docker-compose.yml is `raftkube compose --masters 3`'s output, and its commands are valid."""
import argparse
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


def test_each_master_command_is_one_raftkube_master_accepts():
    for masters in (3, 5, 7):
        doc = yaml.safe_load(compose.compose_file(masters))
        ms = [n for n in doc["services"] if n.startswith("m")]
        assert ms == [f"m{i + 1}" for i in range(masters)]
        for name in ms:
            command = doc["services"][name]["command"]
            parser = argparse.ArgumentParser()
            master.add_arguments(parser)
            args = parser.parse_args(command[1:])
            assert args.name == name and len(args.peers.split(",")) == masters - 1
            assert set(doc["services"][name]["secrets"]) == set(compose.SECRETS)
        for name in compose.NODES:
            parser = argparse.ArgumentParser()
            node.add_arguments(parser)
            args = parser.parse_args(doc["services"][name]["command"][1:])
            assert args.name == name and len(args.server.split(",")) == masters
            assert set(doc["services"][name]["secrets"]) <= set(doc["secrets"])
        assert doc["services"]["haproxy"]["ports"] == ["127.0.0.1:6443:6443"]  # the host's loopback only
        assert compose.haproxy_config(masters).count(" check check-ssl") == masters


def test_secrets_and_a_kubeconfig_for_the_host(tmp_path):
    compose.make_secrets(str(tmp_path / "s"), 3)
    made = set(os.listdir(tmp_path / "s"))
    assert {"cluster.secret", "tokens.csv", "server.crt", "server.key", "ca.crt", "kubeconfig", "node.token"} <= made
    assert oct(os.stat(tmp_path / "s" / "server.key").st_mode & 0o777) == "0o600"


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (.ci/run installs it)")
@pytest.mark.parametrize("masters", [3, 5, 7])
def test_haproxy_accepts_the_config(tmp_path, masters):
    """`haproxy -c`: valid, even where the masters' names do not resolve (yet: a killed container's)."""
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(compose.haproxy_config(masters))
    out = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
