"""A cluster's own certificate authority and the certificates it signs, all checked by their peers:

    ca.crt, ca.key                        the CA (its key stays in the state dir: `raftkube node --state-dir` signs
                                          its kubelet's serving certificate with it)
    server.crt, server.key                the masters' kube API (serverAuth), naming every master and the
                                          `kubernetes` Service (service_names) so that clients in pods verify it too
    apiserver-kubelet-client.crt, .key    the masters' client certificate toward kubelets (clientAuth;
                                          CN kube-apiserver-kubelet-client, O system:masters, as kubeadm makes it)
    kubelet serving certificates          one per node process, for its InternalIP and names (serverAuth)

`raftkube up` makes the first three once per state dir: kubectl only sends bearer tokens over TLS, and the
kubeconfig carries the CA so clients can check the masters without any system trust store.
"""
from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_FOR = datetime.timedelta(days=3650)
KUBELET_CLIENT = "kube-apiserver-kubelet-client"
MASTERS_GROUP = "system:masters"
LEAVES = ("server", "apiserver-kubelet-client")


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    org = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization else []
    return x509.Name([*org, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: str, data: bytes, private: bool = False) -> None:
    mode = 0o600 if private else 0o644
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
        f.write(data)


def _builder(subject: x509.Name, issuer: x509.Name, public_key, now: datetime.datetime) -> x509.CertificateBuilder:
    """What every certificate here carries: its names, its validity, and its Subject Key Identifier."""
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALID_FOR)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def _usage(*, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
                         encipher_only=False, decipher_only=False)


def issue(ca: x509.Certificate, ca_key, common_name: str, *, server_names: list[str] = (),
          client: bool = False, organization: str | None = None
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf certificate signed by the cluster CA, with the extensions strict verifiers require (RFC 5280 and
    Python 3.13's VERIFY_X509_STRICT): key identifiers, key usage, and what it is for (serverAuth, clientAuth)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    purposes = ([ExtendedKeyUsageOID.SERVER_AUTH] if server_names else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (_builder(_name(common_name, organization), ca.subject, key.public_key(), now)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(_usage(), critical=True)
               .add_extension(x509.ExtendedKeyUsage(purposes), critical=False))
    if server_names:
        names: list[x509.GeneralName] = []
        for host in dict.fromkeys(server_names):
            names.append(x509.IPAddress(ipaddress.ip_address(host)) if _is_address(host) else x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def service_names(cluster_ip: str) -> list[str]:
    """How pods address the API servers (the `kubernetes` Service): its ClusterIP and DNS names, which the serving
    certificate must carry for an in-cluster client to verify it."""
    return [cluster_ip, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local"]


def _names(cert: x509.Certificate) -> set[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in sans.get_values_for_type(x509.IPAddress)} | set(sans.get_values_for_type(x509.DNSName))


def _covers(cert_path: str, hosts: list[str]) -> bool:
    with open(cert_path, "rb") as f:
        names = _names(x509.load_pem_x509_certificate(f.read()))
    return all(str(ipaddress.ip_address(h)) in names if _is_address(h) else h in names for h in hosts)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def load_ca(pki_dir: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA `ensure` made in `pki_dir`; OSError (FileNotFoundError without its key) or ValueError."""
    with open(os.path.join(pki_dir, "ca.crt"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(pki_dir, "ca.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{pki_dir}/ca.key is not the elliptic-curve key raftkube makes")
    return ca, key


def ensure(pki_dir: str, hosts: list[str]) -> dict[str, str]:
    """The CA and the masters' certificates in `pki_dir` (see the module's docstring), those missing made, and the
    serving certificate again when it does not name every one of `hosts` (a state dir from before it had to); returns
    their paths by file name. Without the CA's key (a state dir older than it) every one is made again."""
    names = ["ca.crt", "ca.key", *(f"{leaf}.{ext}" for leaf in LEAVES for ext in ("crt", "key"))]
    paths = {name: os.path.join(pki_dir, name) for name in names}
    present = {name for name, path in paths.items() if os.path.exists(path)}
    covered = {"server.crt", "server.key"} <= present and _covers(paths["server.crt"], hosts)
    if present == set(paths) and covered:
        return paths
    os.makedirs(pki_dir, mode=0o700, exist_ok=True)
    fresh = not {"ca.crt", "ca.key"} <= present
    if fresh:
        ca, ca_key = new_ca("raftkube-ca")
        save(ca, ca_key, paths["ca.crt"], paths["ca.key"])
    else:
        ca, ca_key = load_ca(pki_dir)
    leaves = {"server": lambda: issue(ca, ca_key, "raftkube-apiserver",
                                      server_names=["localhost", "127.0.0.1", "::1", *hosts]),
              "apiserver-kubelet-client": lambda: issue(ca, ca_key, KUBELET_CLIENT, client=True,
                                                        organization=MASTERS_GROUP)}
    for leaf, make in leaves.items():
        if fresh or not {f"{leaf}.crt", f"{leaf}.key"} <= present or (leaf == "server" and not covered):
            save(*make(), paths[f"{leaf}.crt"], paths[f"{leaf}.key"])
    return paths


def kubelet_serving(pki_dir: str, node_names: list[str], address: str, cert_path: str, key_path: str) -> None:
    """A serving certificate for the kubelet of `node_names` (one process may serve several), valid for its
    InternalIP `address` (where the API server dials) and the names; CN system:node:NAME, O system:nodes, as a
    kubelet's own. Signed with `pki_dir`'s CA, whose key this needs."""
    ca, ca_key = load_ca(pki_dir)
    cert, key = issue(ca, ca_key, f"system:node:{node_names[0]}", server_names=[address, *node_names],
                      organization="system:nodes")
    save(cert, key, cert_path, key_path)


def save(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, crt_path: str, key_path: str) -> None:
    """A certificate (0644) and its private key (0600), in PEM."""
    _write(crt_path, cert.public_bytes(serialization.Encoding.PEM))
    _write(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()), private=True)


def new_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA that signs leaves only: the cluster's ("raftkube-ca") and the KV ports'
    (raftkube/kv_pki.py)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (_builder(name, name, key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key
