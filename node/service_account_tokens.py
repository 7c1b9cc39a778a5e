"""A pod's projected service account tokens, as the kubelet's token manager asks for them and keeps them fresh.

Each `serviceAccountToken` source of a projected volume (the one the API server gives every pod,
api/pod_service_account.py, or one the pod names itself) is a TokenRequest for the pod's service account, bound to
the pod, for the source's audience (the API server's when it names none) and its expirationSeconds (default 3607,
at least 600). The pod worker writes them with the volume (node/volumes.py) and writes that volume again when one is
due: once 80% of its life has passed, or after a day, whichever comes first, as the kubelet does. A token stops
working when its pod goes, so a stolen one is worth little.
"""
from __future__ import annotations

import asyncio
import calendar
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from api.client import ApiClient, NotFound
from node.runtime import ContainerError

Obj = dict[str, Any]
Key = tuple[str, int]  # (audience, "" for the API server's; expirationSeconds)
log = logging.getLogger("raftkube.kubelet")
DEFAULT_SECONDS = 3607
MIN_SECONDS = 600
RENEW_AT = 0.8
MAX_AGE = 24 * 3600.0
RETRY = 10.0  # seconds before a renewal that failed is tried again


def key_of(source: Obj) -> Key:
    """The token a `serviceAccountToken` source asks for."""
    seconds = source.get("expirationSeconds")
    seconds = seconds if isinstance(seconds, int) and not isinstance(seconds, bool) else DEFAULT_SECONDS
    return str(source.get("audience") or ""), max(seconds, MIN_SECONDS)


def token_sources(volume: Obj) -> list[Obj]:
    """The `serviceAccountToken` sources of a volume (none unless it is projected)."""
    projected = volume.get("projected") if isinstance(volume, dict) else None
    sources = (projected.get("sources") if isinstance(projected, dict) else None) or []
    return [s["serviceAccountToken"] for s in sources
            if isinstance(s, dict) and isinstance(s.get("serviceAccountToken"), dict)]


def with_token_volumes(pod: Obj) -> Obj:
    """The pod with only the volumes that hold tokens: what is written again when a token is renewed."""
    spec = pod.get("spec") or {}
    return {**pod, "spec": {**spec, "volumes": [v for v in spec.get("volumes") or [] if token_sources(v)]}}


def _seconds(timestamp: str) -> float:
    return float(calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ")))


@dataclass
class Token:
    value: str
    issued: float
    expires: float

    def renew_at(self) -> float:
        return self.issued + min(RENEW_AT * (self.expires - self.issued), MAX_AGE)


class PodTokens:
    """The tokens of one pod: asked for together, renewed together."""

    def __init__(self, client: ApiClient, pod: Obj, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.pod = pod
        self.clock = clock
        self.tokens: dict[Key, Token] = {}
        spec = pod.get("spec") or {}
        self.keys = {key_of(s) for v in spec.get("volumes") or [] for s in token_sources(v)}

    def due(self) -> float | None:
        """When the first token should be renewed; None when the pod has none (yet)."""
        return min((t.renew_at() for t in self.tokens.values()), default=None)

    async def fetch(self) -> dict[Key, str]:
        """A new token for every source; ContainerError (FailedMount) when the account does not exist (yet)."""
        for key in sorted(self.keys):
            self.tokens[key] = await self._request(*key)
        return {key: token.value for key, token in self.tokens.items()}

    async def _request(self, audience: str, seconds: int) -> Token:
        meta, spec = self.pod["metadata"], self.pod.get("spec") or {}
        account = spec.get("serviceAccountName") or "default"
        request: Obj = {"expirationSeconds": seconds,
                        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta["name"], "uid": meta["uid"]}}
        if audience:
            request["audiences"] = [audience]
        issued = self.clock()
        try:
            answer = await self.client.post_subresource("serviceaccounts", account, "token", {
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": request}, meta["namespace"])
        except NotFound as exc:
            raise ContainerError("FailedMount", f"failed to fetch the token of service account {account!r}: "
                                                f"{exc.body.get('message', exc)}") from None
        status = answer.get("status") or {}
        return Token(str(status.get("token") or ""), issued, _seconds(status["expirationTimestamp"]))


async def renew(tokens: PodTokens, write: Callable[[dict[Key, str]], Awaitable[None]], *,
                sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
    """Forever: when a token is due, fetch new ones and `write` them (the volumes that hold them)."""
    while (due := tokens.due()) is not None:
        await sleep(max(0.0, due - tokens.clock()))
        try:
            await write(await tokens.fetch())
        except Exception as exc:  # noqa: BLE001 - the API unreachable, a disk error: the old token still works
            log.warning("pod %s/%s: could not renew its service account token (%s); retrying in %gs",
                        tokens.pod["metadata"]["namespace"], tokens.pod["metadata"]["name"], exc, RETRY)
            await sleep(RETRY)
