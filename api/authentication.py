"""Who is asking: kube-apiserver's static token file and service-account tokens, as `User`s with groups.

- The token file (`--token-file`) has one `token,user,uid,"group1,group2"` line per client, as Kubernetes' static
  token file; it is read again when it changes, so a node added later can be given its own token.
- Service-account tokens are JWTs (ES256) that any master signs with the cluster's service-account key
  (`--service-account-key-file`, the same file on every master) through the TokenRequest API
  (`kubectl create token NAME`, and the kubelet for each pod). A token names its service account by name and
  uid and, when bound, the pod it was made for: it stops working when either is deleted (or re-created, with a
  new uid), as Kubernetes' bound tokens do.

Every signed-in user is in group system:authenticated; a service account also in system:serviceaccounts and
system:serviceaccounts:NAMESPACE.
"""
from __future__ import annotations

import csv
import io
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from api.errors import ApiError
from api.registry import lookup
from api.responses import reply

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = ISSUER  # kube-apiserver's --api-audiences default: its issuer
AUTHENTICATED = "system:authenticated"
SA_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict, hash=False, compare=False)

    def info(self) -> dict[str, Any]:
        """As authentication.k8s.io's UserInfo."""
        out: dict[str, Any] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = self.extra
        return out


def signed_in(name: str, uid: str = "", groups: tuple[str, ...] = (), **extra: list[str]) -> User:
    return User(name, uid, tuple(dict.fromkeys((*groups, AUTHENTICATED))), dict(extra))


class StaticTokens:
    """`--token-file`, read again whenever it changes on disk."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}
        self.users()  # a file that cannot be read stops the master at start, not at its first request

    def users(self) -> dict[str, User]:
        st = os.stat(self.path)
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._users = parse_tokens(self.path)
            self._stamp = stamp
        return self._users

    def lookup(self, token: str) -> User | None:
        return self.users().get(token)


def parse_tokens(path: str) -> dict[str, User]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    users = {}
    for row in rows:
        if not row or not row[0].strip() or row[0].startswith("#"):
            continue
        if len(row) < 2:
            raise ValueError(f"{path}: each line needs token,user[,uid[,\"group1,group2\"]]")
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        users[row[0].strip()] = signed_in(row[1].strip(), row[2].strip() if len(row) > 2 else "", groups)
    if not users:
        raise ValueError(f"{path} holds no token")
    return users


def token_line(token: str, user: str, groups: tuple[str, ...] = ()) -> str:
    """One line of a token file."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([token, user, user, ",".join(groups)])
    return out.getvalue()


@dataclass(frozen=True)
class Claims:
    """What a valid service-account token says."""

    namespace: str
    name: str
    uid: str
    pod: tuple[str, str] | None  # (name, uid) of the pod it is bound to
    expires: float

    def user(self) -> User:
        extra = {"authentication.kubernetes.io/pod-name": [self.pod[0]],
                 "authentication.kubernetes.io/pod-uid": [self.pod[1]]} if self.pod else {}
        return signed_in(f"{SA_PREFIX}{self.namespace}:{self.name}", self.uid,
                         ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}"), **extra)


class ServiceAccountKeys:
    """The cluster's service-account signing key (an EC P-256 private key in PEM): signs and checks tokens."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as f:
            self.private = serialization.load_pem_private_key(f.read(), password=None)
        if not isinstance(self.private, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: expected an EC private key (PEM)")
        self.public = self.private.public_key()

    @staticmethod
    def create(path: str) -> str:
        """Write a new key (0600) if `path` holds none; return the path."""
        if not os.path.exists(path):
            pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(pem)
        return path

    def issue(self, *, namespace: str, name: str, uid: str, seconds: int, audiences: list[str],
              pod: tuple[str, str] | None = None, now: float | None = None) -> tuple[str, float]:
        """A token for the service account, and when it expires."""
        now = time.time() if now is None else now
        bound: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}}
        if pod:
            bound["pod"] = {"name": pod[0], "uid": pod[1]}
        claims = {"iss": ISSUER, "sub": f"{SA_PREFIX}{namespace}:{name}", "aud": audiences, "iat": int(now),
                  "nbf": int(now), "exp": int(now) + seconds, "jti": str(uuid.uuid4()), "kubernetes.io": bound}
        return jwt.encode(claims, self.private, algorithm="ES256"), float(int(now) + seconds)

    def verify(self, token: str, audience: str = AUDIENCE) -> Claims | None:
        """The token's claims if this key signed it, for `audience`, and it has not expired; None otherwise."""
        try:
            c = jwt.decode(token, self.public, algorithms=["ES256"], audience=audience, issuer=ISSUER,
                           options={"require": ["exp", "iat", "sub", "aud"]}, leeway=5)
            bound = c["kubernetes.io"]
            pod = (bound["pod"]["name"], bound["pod"]["uid"]) if "pod" in bound else None
            return Claims(bound["namespace"], bound["serviceaccount"]["name"], bound["serviceaccount"]["uid"], pod,
                          float(c["exp"]))
        except (jwt.InvalidTokenError, KeyError, TypeError):
            return None


OPEN_PATHS = {"/healthz", "/livez", "/readyz", "/version", "/version/",
              "/dashboard"}  # the page only: its data requests carry the token (api/dashboard.py)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ANONYMOUS = User("system:anonymous", groups=("system:unauthenticated",))


class Authenticator:
    """Puts the request's `User` in request["user"], or answers 401. `tokens` None: everyone is admin (a master
    started by hand without --token-file)."""

    def __init__(self, tokens: StaticTokens | None, keys: ServiceAccountKeys | None, objects) -> None:
        self.tokens = tokens
        self.keys = keys
        self.objects = objects

    async def user(self, token: str) -> User | None:
        found = self.tokens.lookup(token) if self.tokens is not None else None
        if found is not None or self.keys is None:
            return found
        claims = self.keys.verify(token)
        if claims is None or not await self._still_there("serviceaccounts", claims.namespace, claims.name,
                                                         claims.uid):
            return None
        if claims.pod and not await self._still_there("pods", claims.namespace, *claims.pod):
            return None
        return claims.user()

    async def _still_there(self, plural: str, namespace: str, name: str, uid: str) -> bool:
        """The object exists with that uid (on this master's copy: a token's owner is not re-created often)."""
        try:
            obj = await self.objects.get(lookup("", "v1", plural), namespace, name, local=True)
        except ApiError:
            return False
        return obj["metadata"].get("uid") == uid

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.tokens is None:
            request["user"] = signed_in("admin", groups=("system:masters",))
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        user = await self.user(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if user is None:
            if request.path in OPEN_PATHS:
                request["user"] = ANONYMOUS
                return await handler(request)
            status = ApiError(401, "Unauthorized: send Authorization: Bearer TOKEN with a token from the master's "
                                   "--token-file (raftkube up writes one into its kubeconfig), or a service "
                                   "account's token (kubectl create token NAME)", reason="Unauthorized").status()
            return reply(status, 401)
        request["user"] = user
        return await handler(request)
