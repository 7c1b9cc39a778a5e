"""The cluster's certificates pass strict verifiers: openssl's -x509_strict and Python 3.13's VERIFY_X509_STRICT, the
masters' serving certificate by name and address, and the kubelets' TLS both ways (a serving certificate for the
node's address, the API server's client certificate, which the kubelet's server reads CN and O from)."""
import os
import socket
import ssl
import subprocess
import threading

import pytest

from api.kubelet_client import tls_context
from node.kubelet_auth import API_SERVER, ClientCertificate, subject
from raftkube import certs


@pytest.fixture
def pki(tmp_path):
    return certs.ensure(str(tmp_path / "pki"), ["m1", "10.0.0.5"])


@pytest.fixture
def kubelet(pki, tmp_path):
    """A kubelet serving certificate for node n7 at 127.0.0.7."""
    paths = str(tmp_path / "n7.crt"), str(tmp_path / "n7.key")
    certs.kubelet_serving(os.path.dirname(pki["ca.crt"]), ["n7"], "127.0.0.7", *paths)
    return paths


def strict(ca: str) -> ssl.SSLContext:
    client = ssl.create_default_context(cafile=ca)
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    return client


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, host: str) -> dict | None:
    """A TLS handshake on 127.0.0.1 with `host` as the name checked; the client certificate the server saw."""
    seen: list[dict | None] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve():
            conn, _ = listener.accept()
            try:
                with server.wrap_socket(conn, server_side=True) as tls:
                    seen.append(tls.getpeercert())
                    tls.sendall(tls.recv(1))
            except (ssl.SSLError, OSError):
                conn.close()

        t = threading.Thread(target=serve)
        t.start()
        try:
            with socket.create_connection(("127.0.0.1", port)) as raw:
                with client.wrap_socket(raw, server_hostname=host) as tls:
                    tls.sendall(b"x")
                    if tls.recv(1) != b"x":  # the server's answer: with TLS 1.3, a refusal comes after the handshake
                        raise ConnectionError("the server closed the connection")
        finally:
            t.join(5)
    return seen[0] if seen else None


@pytest.mark.parametrize("certificate,purpose", [("server", "sslserver"), ("apiserver-kubelet-client", "sslclient")])
def test_openssl_verifies_the_masters_certificates_strictly(pki, certificate, purpose):
    out = subprocess.run(["openssl", "verify", "-x509_strict", "-purpose", purpose, "-CAfile", pki["ca.crt"],
                          pki[f"{certificate}.crt"]], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_openssl_verifies_a_kubelet_serving_certificate_strictly(pki, kubelet):
    out = subprocess.run(["openssl", "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", pki["ca.crt"],
                          kubelet[0]], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_strict_tls_client_completes_a_handshake_by_name_and_by_address(pki):
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki["server.crt"], pki["server.key"])
    for host in ("localhost", "127.0.0.1"):
        handshake(server, strict(pki["ca.crt"]), host)


def test_the_api_server_and_a_kubelet_verify_each_other_strictly(pki, kubelet):
    """The kubelet's server (node/kubelet_auth.py) and the API server's client (api/kubelet_client.py): the kubelet
    is checked for its address, the client certificate is checked and named; anything else is refused."""
    server = ClientCertificate(*kubelet, pki["ca.crt"]).context
    client = tls_context(pki["apiserver-kubelet-client.crt"], pki["apiserver-kubelet-client.key"], pki["ca.crt"])
    assert subject(handshake(server, client, "127.0.0.7")) == (API_SERVER[0], {API_SERVER[1]})
    assert subject(handshake(server, strict(pki["ca.crt"]), "n7")) == (None, set())  # no certificate: a 401 later
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server, client, "127.0.0.8")  # not the address the certificate is for
    as_kubelet = strict(pki["ca.crt"])
    as_kubelet.load_cert_chain(*kubelet)  # a serving certificate, not for clients
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(server, as_kubelet, "127.0.0.7")


def test_the_private_keys_are_readable_by_their_owner_only(pki):
    for key in ("ca.key", "server.key", "apiserver-kubelet-client.key"):
        assert os.stat(pki[key]).st_mode & 0o777 == 0o600
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
