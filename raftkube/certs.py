"""A cluster's own certificate authority and the masters' serving certificate (for the kube API), which names
every master and the `kubernetes` Service (service_names) so that clients in pods verify it too.

`raftkube up` makes them once per state dir: kubectl only sends bearer tokens over TLS, and the
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


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


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
          client: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf certificate signed by the cluster CA, with the extensions strict verifiers require (RFC 5280 and
    Python 3.13's VERIFY_X509_STRICT): key identifiers, key usage, and what it is for (serverAuth, clientAuth)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    purposes = ([ExtendedKeyUsageOID.SERVER_AUTH] if server_names else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (_builder(_name(common_name), ca.subject, key.public_key(), now)
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


def ensure(pki_dir: str, hosts: list[str]) -> dict[str, str]:
    """ca.crt, server.crt and server.key in `pki_dir`, made if missing or if the serving certificate does not name
    every one of `hosts` (a state dir from before it had to); returns their paths."""
    paths = {name: os.path.join(pki_dir, name) for name in ("ca.crt", "server.crt", "server.key")}
    if all(os.path.exists(p) for p in paths.values()) and _covers(paths["server.crt"], hosts):
        return paths
    os.makedirs(pki_dir, mode=0o700, exist_ok=True)
    ca, ca_key = new_ca("raftkube-ca")
    cert, key = issue(ca, ca_key, "raftkube-apiserver", server_names=["localhost", "127.0.0.1", "::1", *hosts])
    _write(paths["ca.crt"], ca.public_bytes(serialization.Encoding.PEM))
    save(cert, key, paths["server.crt"], paths["server.key"])
    return paths


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
