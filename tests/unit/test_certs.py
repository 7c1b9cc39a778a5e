"""The cluster's certificates pass strict verifiers: openssl's -x509_strict and Python 3.13's VERIFY_X509_STRICT."""
import os
import socket
import ssl
import subprocess
import threading

import pytest

from raftkube import certs


@pytest.fixture
def pki(tmp_path):
    return certs.ensure(str(tmp_path / "pki"), ["m1", "10.0.0.5"])


def test_openssl_verifies_the_serving_certificate_strictly(pki):
    out = subprocess.run(["openssl", "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", pki["ca.crt"],
                          pki["server.crt"]], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_strict_tls_client_completes_a_handshake_by_name_and_by_address(pki):
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki["server.crt"], pki["server.key"])
    client = ssl.create_default_context(cafile=pki["ca.crt"])
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    for host in ("localhost", "127.0.0.1"):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]

            def serve():
                conn, _ = listener.accept()
                with server.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)

            t = threading.Thread(target=serve)
            t.start()
            with socket.create_connection(("127.0.0.1", port)) as raw:
                with client.wrap_socket(raw, server_hostname=host) as tls:
                    tls.sendall(b"x")
            t.join(5)


def test_the_private_key_is_readable_by_its_owner_only(pki):
    assert os.stat(pki["server.key"]).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(pki["server.key"])).st_mode & 0o777 == 0o700


def test_the_serving_certificate_names_the_kubernetes_service_and_is_made_again_when_it_does_not(tmp_path):
    """Pods verify the API at the `kubernetes` Service's ClusterIP and names; a state dir whose certificate predates
    them gets a new one."""
    old = certs.ensure(str(tmp_path / "pki"), ["m1"])
    with open(old["server.crt"]) as f:
        before = f.read()
    names = ["m1", *certs.service_names("127.96.0.1")]
    new = certs.ensure(str(tmp_path / "pki"), names)
    with open(new["server.crt"]) as f:
        after = f.read()
    assert after != before
    assert certs.ensure(str(tmp_path / "pki"), names) == new
    with open(new["server.crt"]) as f:
        assert f.read() == after  # kept once it names them all
    out = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", new["server.crt"]],
                         capture_output=True, text=True)
    assert "IP Address:127.96.0.1" in out.stdout and "DNS:kubernetes.default.svc.cluster.local" in out.stdout
