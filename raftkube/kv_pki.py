"""The KV ports' certificates: a CA of their own and what it signs, as kubeadm makes etcd's (pki/etcd/).

    ca.crt, ca.key                      the KV CA: the masters trust it for KV clients (--kv-trusted-ca-file), and
                                        nothing else (the cluster CA of raftkube/certs.py, which kubelets and kube
                                        API clients meet, signs no KV client)
    server-NAME.crt, .key               master NAME's KV port (serverAuth, for its KV address)
    apiserver-etcd-client.crt, .key     the masters' own calls to KV ports (clientAuth; kubeadm's name)
    operator.crt, .key                  the operator's: raftkube status/chaos/member/demo/campaign, raftkube.testing,
                                        etcdctl and curl (clientAuth; cluster.json's "kv_tls")

Whoever holds a client certificate may do anything on the KV API (read every key, Secrets' ciphertext included,
compact, change membership), as with etcd's client-cert-auth without RBAC: keys are 0600 in a 0700 directory.
The CA's key stays here: `raftkube member add` signs the new master's KV certificate with it.
"""
from __future__ import annotations

import os

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from raftkube import certs

CA_NAME = "raftkube-etcd-ca"
APISERVER = "apiserver-etcd-client"
OPERATOR = "operator"
CLIENTS = {APISERVER: "kube-apiserver-etcd-client", OPERATOR: "raftkube-operator"}  # file -> common name
LOCAL_NAMES = ["localhost", "127.0.0.1", "::1"]


def directory(state_dir: str) -> str:
    return os.path.join(state_dir, "pki", "etcd")


def pair(pki_dir: str, leaf: str) -> tuple[str, str]:
    """A leaf's certificate and key paths."""
    return os.path.join(pki_dir, f"{leaf}.crt"), os.path.join(pki_dir, f"{leaf}.key")


def server_leaf(name: str) -> str:
    return f"server-{name}"


def ensure(pki_dir: str, servers: dict[str, list[str]], *, servers_are_clients: bool = False) -> None:
    """The CA, the client certificates and a serving certificate per master (name -> the names and addresses it is
    reached by) in `pki_dir`, those missing made. Without the CA's key every certificate is made again.
    `servers_are_clients`: serving certificates for clientAuth too, as kubeadm makes etcd's, for a real etcd (the
    bench's): its JSON gateway dials its own gRPC server with its serving certificate. A master's are not: it calls
    KV ports with the API servers' certificate, and a stolen serving key does not make a KV client."""
    os.makedirs(pki_dir, mode=0o700, exist_ok=True)
    ca_crt, ca_key = pair(pki_dir, "ca")
    fresh = not (os.path.exists(ca_crt) and os.path.exists(ca_key))
    if fresh:
        certs.save(*certs.new_ca(CA_NAME), ca_crt, ca_key)
    ca, key = _load_ca(pki_dir)
    leaves = {leaf: (common_name, [], True) for leaf, common_name in CLIENTS.items()}
    leaves.update({server_leaf(name): (name, hosts, servers_are_clients) for name, hosts in servers.items()})
    for leaf, (common_name, hosts, client) in leaves.items():
        crt_path, key_path = pair(pki_dir, leaf)
        if fresh or not (os.path.exists(crt_path) and os.path.exists(key_path)):
            certs.save(*certs.issue(ca, key, common_name, server_names=hosts, client=client), crt_path, key_path)


def cluster_entry(pki_dir: str) -> dict[str, str]:
    """cluster.json's "kv_tls": the CA to check the KV ports with and the operator's certificate and key."""
    crt, key = pair(pki_dir, OPERATOR)
    return {"ca": pair(pki_dir, "ca")[0], "cert": crt, "key": key}


def shared_flags(ca: str, client: tuple[str, str]) -> tuple[str, ...]:
    """The `raftkube master` flags every master of a cluster shares: clients need a certificate the KV CA (`ca`)
    signed, and the master's own calls to KV ports present `client` (the API servers' certificate and key)."""
    return ("--kv-client-cert-auth", "--kv-trusted-ca-file", ca, "--etcd-cafile", ca, "--etcd-certfile", client[0],
            "--etcd-keyfile", client[1])


def server_flags(server: tuple[str, str]) -> tuple[str, ...]:
    """A master's own serving certificate and key, as flags."""
    return "--kv-cert-file", server[0], "--kv-key-file", server[1]


def _load_ca(pki_dir: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    crt_path, key_path = pair(pki_dir, "ca")
    with open(crt_path, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} is not the elliptic-curve key raftkube makes")
    return ca, key
