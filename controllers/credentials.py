"""Each controller acts as its own service account, as kube-controller-manager does with
--use-service-account-credentials: the controller-manager (system:kube-controller-manager, which may create
service accounts in kube-system and ask tokens for them) makes the account if it is missing and asks the
TokenRequest API for a token, which the controller's own client sends. So an Event, a created pod or a refused
request names the controller that did it, and each one holds only its own role (api/bootstrap_policy.py).

A token lives an hour; it is renewed when 80% of that has passed, as client-go's token source does, and at once
when the API server refuses it (its account was deleted and made again).
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable

from api.client import ApiClient, Conflict, NotFound

NAMESPACE = "kube-system"
SECONDS = 3600
RENEW_AT = 0.8  # of the token's life


class ServiceAccountToken:
    """api.client.Credentials for kube-system's service account `name`, asked through `client`."""

    def __init__(self, client: ApiClient, name: str, *, seconds: int = SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.name = name
        self.seconds = seconds
        self.clock = clock
        self._token = ""
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if not self._token or self.clock() >= self._renew_at:
            async with self._lock:  # one TokenRequest for all the requests waiting on it
                if not self._token or self.clock() >= self._renew_at:
                    await self._renew()
        return self._token

    def refused(self) -> None:
        self._token = ""

    async def _renew(self) -> None:
        asked = self.clock()
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": self.seconds}}
        try:
            answer = await self.client.post_subresource("serviceaccounts", self.name, "token", body, NAMESPACE)
        except NotFound:
            await self._create_account()
            answer = await self.client.post_subresource("serviceaccounts", self.name, "token", body, NAMESPACE)
        self._token = answer["status"]["token"]
        self._renew_at = asked + RENEW_AT * self.seconds

    async def _create_account(self) -> None:
        account = {"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": self.name, "namespace": NAMESPACE}}
        try:
            await self.client.create("serviceaccounts", account, NAMESPACE)
        except Conflict:  # another master's controller-manager made it first
            pass


def controller_client(manager: ApiClient, service_account: str) -> ApiClient:
    """A client acting as kube-system's `service_account`, its tokens asked by the controller-manager's client."""
    return manager.with_credentials(ServiceAccountToken(manager, service_account))
