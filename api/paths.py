"""A resource path as the API server reads it: which resource, in which namespace, which object, which
subresource."""
from __future__ import annotations

from dataclasses import dataclass

from api.errors import no_such_path
from api.registry import Resource, lookup


@dataclass
class Target:
    res: Resource
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def whole(self) -> Target:
        """The object itself, not its subresource."""
        return Target(self.res, self.namespace, self.name, None)


def parse_path(path: str) -> Target:
    """/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]] and /apis/GROUP/VERSION/... (404 otherwise)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise no_such_path(f"the server could not find the requested resource ({path})")
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    res = lookup(group, version, rest[0])
    proxied = len(rest) > 3 and rest[2] == "proxy"  # the rest is the path asked of the pod (api/http_proxy.py)
    if res is None or (len(rest) > 3 and not proxied) or (namespace and not res.namespaced):
        raise no_such_path(f"the server could not find the requested resource ({path})")
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in res.subresources:
        raise no_such_path(f"{res.plural} has no subresource {sub!r}")
    return Target(res, namespace, name, sub)
