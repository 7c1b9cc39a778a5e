"""Secrets encrypted at rest (Kubernetes' EncryptionConfiguration): no file of any data dir holds a Secret's value,
the KV API hands out only ciphertext, data dirs are private, and keys rotate by re-writing."""
import base64
import gzip
import os

import yaml

from kvstore.client import KVClient, unb64
from tests.integration.cluster import Cluster, eventually

MARKER = "correct-horse-battery-staple"


def files_under(root: str):
    for where, _, names in os.walk(root):
        for name in names:
            yield os.path.join(where, name)


def contents(path: str) -> bytes:
    """A file's bytes, and its gunzipped bytes too when it is gzip (the snapshots are)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data += gzip.decompress(data)
    return data


async def secret_value(cluster, name="s") -> str:
    api = cluster.api()
    try:
        return base64.b64decode((await api.get("secrets", name, namespace="default"))["data"]["password"]).decode()
    finally:
        await api.close()


async def stored(cluster, name="s") -> bytes:
    async with KVClient(cluster.master("m1")["kv"], tls=cluster.kv_tls()) as kv:
        res = await kv.range(f"/registry/secrets/default/{name}".encode())
    return unb64(res["kvs"][0]["value"])


async def test_a_secret_is_in_no_file_and_only_ciphertext_leaves_the_kv_api(tmp_path):
    cluster = Cluster(str(tmp_path / "c"), 3, ("--snapshot-entries", "20"))
    try:
        api = cluster.api()
        try:
            await api.create("secrets", {"metadata": {"name": "s", "namespace": "default"},
                                         "stringData": {"password": MARKER}}, namespace="default")
            for i in range(30):  # past --snapshot-entries: snapshots are written too
                await api.create("configmaps", {"metadata": {"name": f"c{i}", "namespace": "default"}},
                                 namespace="default")
        finally:
            await api.close()
        assert await secret_value(cluster) == MARKER
        assert (await stored(cluster)).startswith(b"k8s:enc:aesgcm:v1:key1:")
        data_dirs = [m["data_dir"] for m in cluster.info["masters"]]
        await eventually(lambda: _all_snapshotted(data_dirs), timeout=30, what="a snapshot on every master")
        forms = [MARKER.encode(), base64.b64encode(MARKER.encode())]
        for d in data_dirs:
            assert os.stat(d).st_mode & 0o777 == 0o700
            for path in files_under(d):
                assert os.stat(path).st_mode & 0o777 == 0o600, path
                assert not any(form in contents(path) for form in forms), f"{path} holds the Secret in clear"
    finally:
        cluster.stop()


async def _all_snapshotted(data_dirs) -> bool:
    return all(os.path.exists(os.path.join(d, "raft.snapshot")) for d in data_dirs)


async def test_keys_rotate_by_rewriting(tmp_path):
    cluster = Cluster(str(tmp_path / "c"), 3)
    try:
        api = cluster.api()
        await api.create("secrets", {"metadata": {"name": "s", "namespace": "default"},
                                     "stringData": {"password": MARKER}}, namespace="default")
        config_path = os.path.join(cluster.state_dir, "pki", "encryption-config.yaml")
        with open(config_path) as f:
            config = yaml.safe_load(f)
        providers = config["resources"][0]["providers"]
        new_key = {"name": "key2", "secret": base64.b64encode(os.urandom(32)).decode()}
        old_key = providers[0]["aesgcm"]["keys"][0]

        async def restart_all(keys) -> None:
            providers[0]["aesgcm"]["keys"] = keys
            with open(config_path, "w") as f:
                yaml.safe_dump(config, f)
            for name in cluster.names:
                cluster.restart(name)
            await cluster.close_clients()
            await eventually(lambda: secret_value(cluster), timeout=30, what="the masters back, reading the Secret")

        await restart_all([new_key, old_key])  # new key first: new writes use it, old values still read
        secret = await api.get("secrets", "s", namespace="default")
        await api.update("secrets", secret)  # re-write: now under key2
        assert (await stored(cluster)).startswith(b"k8s:enc:aesgcm:v1:key2:")
        await restart_all([new_key])  # the old key gone
        assert await secret_value(cluster) == MARKER
        await api.close()
    finally:
        cluster.stop()
