"""EncryptionConfiguration as Kubernetes has it: seal with the first provider, read with any, bound to the key."""
import base64

import pytest

from api import encryption


def config(*providers):
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": [{"resources": ["secrets"], "providers": list(providers)}]}


def key(name, size=32):
    return {"name": name, "secret": base64.b64encode(bytes([len(name)]) * size).decode()}


KEY = b"/registry/secrets/default/s"


@pytest.mark.parametrize("provider", ["aesgcm", "aescbc"])
def test_a_secret_is_sealed_under_its_provider_and_key_and_reads_back(provider):
    t = encryption.parse(config({provider: {"keys": [key("k1")]}}, {"identity": {}}))
    sealed = t.seal("secrets", "", KEY, b"hunter2")
    assert sealed.startswith(f"k8s:enc:{provider}:v1:k1:".encode()) and b"hunter2" not in sealed
    assert t.open(KEY, sealed) == b"hunter2"
    assert t.seal("configmaps", "", b"/registry/configmaps/default/c", b"plain") == b"plain"


def test_keys_rotate_by_rewriting_and_old_values_still_read_while_the_old_key_is_listed():
    old = encryption.parse(config({"aesgcm": {"keys": [key("k1")]}}))
    sealed_old = old.seal("secrets", "", KEY, b"v1")
    both = encryption.parse(config({"aesgcm": {"keys": [key("k22"), key("k1")]}}))
    assert both.open(KEY, sealed_old) == b"v1"
    assert both.seal("secrets", "", KEY, b"v2").startswith(b"k8s:enc:aesgcm:v1:k22:")
    new_only = encryption.parse(config({"aesgcm": {"keys": [key("k22")]}}))
    with pytest.raises(encryption.DecryptError, match="does not have"):
        new_only.open(KEY, sealed_old)


def test_a_ciphertext_moved_under_another_key_does_not_open():
    t = encryption.parse(config({"aesgcm": {"keys": [key("k1")]}}))
    sealed = t.seal("secrets", "", KEY, b"x")
    with pytest.raises(encryption.DecryptError):
        t.open(b"/registry/secrets/default/other", sealed)


def test_identity_first_writes_in_clear_but_still_reads_encrypted_values():
    enc = encryption.parse(config({"aesgcm": {"keys": [key("k1")]}}))
    sealed = enc.seal("secrets", "", KEY, b"x")
    clear_first = encryption.parse(config({"identity": {}}, {"aesgcm": {"keys": [key("k1")]}}))
    assert clear_first.seal("secrets", "", KEY, b"x") == b"x" and clear_first.open(KEY, sealed) == b"x"


@pytest.mark.parametrize("bad", [{}, config(), config({"aesgcm": {"keys": []}}), config({"rot13": {}}),
                                 config({"aescbc": {"keys": [key("short", 16)]}}),
                                 config({"aesgcm": {"keys": [{"name": "x", "secret": "%%%"}]}})])
def test_a_configuration_that_cannot_work_is_refused(bad):
    with pytest.raises(encryption.ConfigError):
        encryption.parse(bad)


def test_a_new_configuration_encrypts_secrets_with_aes_gcm():
    import yaml
    t = encryption.parse(yaml.safe_load(encryption.new_config()))
    assert t.seal("secrets", "", KEY, b"x").startswith(b"k8s:enc:aesgcm:v1:key1:")
