"""Objects encrypted at rest, as kube-apiserver's --encryption-provider-config does it.

The file is Kubernetes' own EncryptionConfiguration (apiserver.config.k8s.io/v1):

    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
      - resources: [secrets]
        providers:
          - aesgcm: {keys: [{name: key2, secret: <base64 of 16, 24 or 32 bytes>}]}
          - aescbc: {keys: [{name: key1, secret: <base64 of 32 bytes>}]}
          - identity: {}

For each resource listed, the first provider encrypts what is written and every provider can read what it
wrote, so keys rotate by re-writing: add the new key second, restart every master, move it first, restart,
re-write every object (`kubectl get secrets -A -o json | kubectl replace -f -`), then drop the old key. A
stored value reads `k8s:enc:aesgcm:v1:KEYNAME:` then the nonce and the ciphertext, and the object's key in the
store is the associated data (a ciphertext copied under another key does not decrypt), as in Kubernetes. Both
the Raft journal and the snapshots hold only that; the KV API hands it out as it is.
"""
from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Any

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = b"k8s:enc:"


class ConfigError(ValueError):
    """The EncryptionConfiguration cannot be used (the master refuses to start with it)."""


class DecryptError(Exception):
    """A stored value no configured key can read."""


@dataclass(frozen=True)
class Key:
    provider: str  # "aesgcm" or "aescbc"
    name: str
    secret: bytes

    @property
    def prefix(self) -> bytes:
        return PREFIX + f"{self.provider}:v1:{self.name}:".encode()

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        if self.provider == "aesgcm":
            nonce = os.urandom(12)
            return self.prefix + nonce + AESGCM(self.secret).encrypt(nonce, plaintext, context)
        iv = os.urandom(16)  # aescbc: PKCS#7 padding, no associated data (as Kubernetes)
        padder = padding.PKCS7(128).padder()
        encryptor = Cipher(algorithms.AES(self.secret), modes.CBC(iv)).encryptor()
        return self.prefix + iv + encryptor.update(padder.update(plaintext) + padder.finalize()) + encryptor.finalize()

    def open(self, sealed: bytes, context: bytes) -> bytes:
        body = sealed[len(self.prefix):]
        try:
            if self.provider == "aesgcm":
                return AESGCM(self.secret).decrypt(body[:12], body[12:], context)
            decryptor = Cipher(algorithms.AES(self.secret), modes.CBC(body[:16])).decryptor()
            unpadder = padding.PKCS7(128).unpadder()
            return unpadder.update(decryptor.update(body[16:]) + decryptor.finalize()) + unpadder.finalize()
        except (InvalidTag, ValueError) as exc:
            raise DecryptError(f"key {self.name} ({self.provider}) cannot read this value: {exc!r}") from None


@dataclass(frozen=True)
class Rule:
    resources: tuple[str, ...]  # "secrets", "deployments.apps", "*.apps", "*.*"
    write: Key | None  # None: identity first, so values are written in clear
    read: tuple[Key, ...]

    def covers(self, plural: str, group: str) -> bool:
        name = f"{plural}.{group}" if group else plural
        return any(r in (name, "*.*") or (r.startswith("*.") and r[2:] == group) or
                   (not group and r == "*.") for r in self.resources)


class Transformer:
    """Seals values on their way into the store and opens them on the way out."""

    def __init__(self, rules: tuple[Rule, ...] = ()) -> None:
        self.rules = rules
        self.keys = {k.prefix: k for rule in rules for k in rule.read}

    def seal(self, plural: str, group: str, key: bytes, plaintext: bytes) -> bytes:
        rule = next((r for r in self.rules if r.covers(plural, group)), None)
        if rule is None or rule.write is None:
            return plaintext
        return rule.write.seal(plaintext, key)

    def open(self, key: bytes, stored: bytes) -> bytes:
        if not stored.startswith(PREFIX):
            return stored
        prefix = b":".join(stored.split(b":", 5)[:5]) + b":"  # k8s:enc:PROVIDER:v1:KEYNAME:
        found = self.keys.get(prefix)
        if found is None:
            raise DecryptError(f"{key.decode(errors='replace')} is encrypted with {prefix.decode(errors='replace')!r}, "
                               "a key this master's --encryption-provider-config does not have")
        return found.open(stored, key)


def load(path: str) -> Transformer:
    with open(path) as f:
        try:
            config = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not YAML: {exc}") from None
    return parse(config, path)


def parse(config: Any, where: str = "the encryption configuration") -> Transformer:
    if not isinstance(config, dict) or config.get("kind") != "EncryptionConfiguration":
        raise ConfigError(f"{where}: expected kind: EncryptionConfiguration (apiserver.config.k8s.io/v1)")
    rules = []
    for i, entry in enumerate(config.get("resources") or []):
        resources, providers = entry.get("resources"), entry.get("providers")
        if not resources or not isinstance(providers, list) or not providers:
            raise ConfigError(f"{where}: resources[{i}] needs resources and providers")
        keys: list[Key | None] = []
        for provider in providers:
            if not isinstance(provider, dict) or len(provider) != 1:
                raise ConfigError(f"{where}: each provider is one of aesgcm, aescbc, identity, not {provider!r}")
            (kind, spec), = provider.items()
            if kind == "identity":
                keys.append(None)
            elif kind in ("aesgcm", "aescbc"):
                keys.extend(_keys(kind, spec, where))
            else:
                raise ConfigError(f"{where}: provider {provider!r} is not one of aesgcm, aescbc, identity")
        rules.append(Rule(tuple(resources), keys[0], tuple(k for k in keys if k is not None)))
    return Transformer(tuple(rules))


def _keys(kind: str, spec: Any, where: str) -> list[Key]:
    out = []
    for k in (spec or {}).get("keys") or []:
        try:
            secret = base64.b64decode(k["secret"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise ConfigError(f"{where}: every {kind} key needs a name and a base64 secret") from None
        if len(secret) not in ((16, 24, 32) if kind == "aesgcm" else (32,)):
            raise ConfigError(f"{where}: {kind} key {k.get('name')!r} must be "
                              f"{'16, 24 or 32' if kind == 'aesgcm' else '32'} bytes, not {len(secret)}")
        out.append(Key(kind, str(k["name"]), secret))
    if not out:
        raise ConfigError(f"{where}: the {kind} provider lists no keys")
    return out


def new_config() -> str:
    """A fresh EncryptionConfiguration for Secrets: AES-GCM with a random 256-bit key (what `up` writes)."""
    secret = base64.b64encode(os.urandom(32)).decode()
    return ("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
            "  - resources: [secrets]\n    providers:\n"
            f"      - aesgcm:\n          keys:\n            - {{name: key1, secret: {secret}}}\n"
            "      - identity: {}\n")
