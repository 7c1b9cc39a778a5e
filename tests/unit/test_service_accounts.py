"""Service accounts at work: the volume the API server gives a pod (api/pod_service_account.py), the tokens the
kubelet asks for it and renews (node/service_account_tokens.py, written by node/volumes.py), and the tokens the
controller-manager asks for each controller (controllers/credentials.py)."""
import asyncio
import copy
import os

import pytest

from api import objects
from api.client import ApiClient, NotFound
from api.errors import ApiError
from api.pod_service_account import MOUNT_PATH, admit
from controllers.credentials import ServiceAccountToken
from node import volumes
from node.host_paths import HostPaths
from node.pod_config import PodConfig
from node.runtime import ContainerError
from node.sandbox import Sandboxes
from node.service_account_tokens import PodTokens, renew, with_token_volumes

POD = {"metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
       "spec": {"initContainers": [{"name": "init", "image": "i"}], "containers": [{"name": "app", "image": "i"}]}}


class Accounts:
    """ObjectStore.get over a few service accounts."""

    def __init__(self, **accounts):
        self.accounts = accounts

    async def get(self, res, namespace, name, local=False):
        if name not in self.accounts:
            raise ApiError(404, "not found")
        return self.accounts[name]


async def test_every_container_mounts_the_service_account_volume_once():
    pod = copy.deepcopy(POD)
    await admit(Accounts(), pod)
    spec = pod["spec"]
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "default"
    [volume] = spec["volumes"]
    assert volume["name"].startswith("kube-api-access-")
    kinds = [next(iter(s)) for s in volume["projected"]["sources"]]
    assert kinds == ["serviceAccountToken", "configMap", "downwardAPI"]
    for container in spec["initContainers"] + spec["containers"]:
        assert container["volumeMounts"] == [{"name": volume["name"], "readOnly": True, "mountPath": MOUNT_PATH}]


async def test_a_pod_or_its_account_may_opt_out_and_a_container_may_mount_its_own():
    pod = copy.deepcopy(POD)
    pod["spec"]["automountServiceAccountToken"] = False
    await admit(Accounts(), pod)
    assert "volumes" not in pod["spec"]
    pod = copy.deepcopy(POD)
    pod["spec"]["serviceAccountName"] = "quiet"
    await admit(Accounts(quiet={"automountServiceAccountToken": False}), pod)
    assert "volumes" not in pod["spec"]
    pod = copy.deepcopy(POD)
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "mine", "mountPath": MOUNT_PATH}]
    pod["spec"]["volumes"] = [{"name": "mine", "emptyDir": {}}]
    await admit(Accounts(), pod)
    assert pod["spec"]["containers"][0]["volumeMounts"] == [{"name": "mine", "mountPath": MOUNT_PATH}]
    assert len(pod["spec"]["volumes"]) == 2  # the init container still gets the token


class TokenApi(ApiClient):
    """The TokenRequest subresource and ServiceAccount creates, answered in memory: token-1, token-2, ..."""

    def __init__(self, *accounts):
        super().__init__(["https://unused"])
        self.accounts = set(accounts)
        self.asked: list[dict] = []

    async def post_subresource(self, kind, name, sub, body, namespace=None):
        assert (kind, sub) == ("serviceaccounts", "token")
        if name not in self.accounts:
            raise NotFound(404, {"message": f'serviceaccounts "{name}" not found'})
        self.asked.append(body["spec"])
        seconds = body["spec"]["expirationSeconds"]
        return {"status": {"token": f"token-{len(self.asked)}", "expirationTimestamp": objects.timestamp(
            NOW[0] + seconds)}}

    async def create(self, kind, obj, namespace=None):
        self.accounts.add(obj["metadata"]["name"])
        return obj


NOW = [1_000_000.0]


def token_pod() -> dict:
    pod = copy.deepcopy(POD)
    pod["spec"]["serviceAccountName"] = "web"
    pod["spec"]["volumes"] = [
        {"name": "kube-api-access-x", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
        {"name": "vault", "projected": {"sources": [{"serviceAccountToken": {
            "path": "vault/token", "audience": "vault", "expirationSeconds": 60}}]}},
        {"name": "scratch", "emptyDir": {}}]
    return pod


async def test_a_pod_gets_bound_tokens_for_each_audience_and_they_are_written_as_files(tmp_path):
    api = TokenApi("web")
    pod = token_pod()
    tokens = PodTokens(api, pod, clock=lambda: NOW[0])
    config = PodConfig(tokens=await tokens.fetch())
    asked = {(s.get("audiences", [""])[0], s["expirationSeconds"]) for s in api.asked}
    assert asked == {("", 3607), ("vault", 600)}  # the default life, and no less than ten minutes
    assert all(s["boundObjectRef"] == {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u1"}
               for s in api.asked)
    sandbox = Sandboxes(str(tmp_path), "127.1.2.0/24").open(pod)
    volumes.materialize(sandbox, pod, config, HostPaths([]).resolve)
    written = {open(os.path.join(sandbox.dir, "volumes", v, f)).read()
               for v, f in (("kube-api-access-x", "token"), ("vault", "vault/token"))}
    assert written == {"token-1", "token-2"}
    assert [v["name"] for v in with_token_volumes(pod)["spec"]["volumes"]] == ["kube-api-access-x", "vault"]


async def test_a_missing_token_or_account_is_a_failed_mount(tmp_path):
    pod = token_pod()
    sandbox = Sandboxes(str(tmp_path), "127.1.2.0/24").open(pod)
    with pytest.raises(ContainerError, match="no service account token"):
        volumes.materialize(sandbox, pod, PodConfig(), HostPaths([]).resolve)
    with pytest.raises(ContainerError) as failed:
        await PodTokens(TokenApi(), pod).fetch()
    assert failed.value.reason == "FailedMount" and "not found" in failed.value.message


async def test_tokens_are_renewed_when_four_fifths_of_the_shortest_life_has_passed():
    api = TokenApi("web")
    tokens = PodTokens(api, token_pod(), clock=lambda: NOW[0])
    await tokens.fetch()
    written, slept = [], []

    async def sleep(seconds):
        slept.append(seconds)
        NOW[0] += seconds
        if len(written) == 2:
            raise asyncio.CancelledError

    async def write(values):
        written.append(sorted(values.values()))

    with pytest.raises(asyncio.CancelledError):
        await renew(tokens, write, sleep=sleep)
    assert slept[:2] == [0.8 * 600, 0.8 * 600]  # the vault token's 600 s decides
    assert written == [["token-3", "token-4"], ["token-5", "token-6"]]


async def test_a_controller_token_is_asked_once_renewed_in_time_and_again_when_refused():
    api = TokenApi()  # the account does not exist yet: made on first use
    source = ServiceAccountToken(api, "replicaset-controller", seconds=3600, clock=lambda: NOW[0])
    first, again = await asyncio.gather(source.token(), source.token())
    assert first == again == "token-1" and "replicaset-controller" in api.accounts
    NOW[0] += 0.79 * 3600
    assert await source.token() == "token-1"
    NOW[0] += 0.02 * 3600
    assert await source.token() == "token-2"
    source.refused()
    assert await source.token() == "token-3"
