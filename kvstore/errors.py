"""Errors as values, with etcd's messages and gRPC codes.

The state machine never raises: it returns a `KVError`, and the edges (the gateway, the
kube API) turn it into an HTTP answer. The messages are etcd's own, so etcd clients that
match on them keep working.
"""
from __future__ import annotations

from typing import NamedTuple

# gRPC status codes used by etcd.
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14

# How grpc-gateway maps a gRPC code to an HTTP status.
HTTP_STATUS = {
    INVALID_ARGUMENT: 400,
    DEADLINE_EXCEEDED: 504,
    NOT_FOUND: 404,
    RESOURCE_EXHAUSTED: 429,
    FAILED_PRECONDITION: 412,
    OUT_OF_RANGE: 400,
    UNIMPLEMENTED: 501,
    INTERNAL: 500,
    UNAVAILABLE: 503,
}


class KVError(NamedTuple):
    code: int
    message: str

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


class BadRequest(ValueError):
    """A request that cannot be decoded (JSON or protobuf): InvalidArgument, and nothing changes."""


class KVFailure(Exception):
    """A KVError raised at the edges (never inside apply)."""

    def __init__(self, error: KVError):
        super().__init__(error.message)
        self.error = error


COMPACTED = KVError(OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
FUTURE_REV = KVError(OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision")
LEASE_NOT_FOUND = KVError(NOT_FOUND, "etcdserver: requested lease not found")
LEASE_EXISTS = KVError(FAILED_PRECONDITION, "etcdserver: lease already exists")
KEY_NOT_PROVIDED = KVError(INVALID_ARGUMENT, "etcdserver: key is not provided")
DUPLICATE_KEY = KVError(INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")
TOO_MANY_OPS = KVError(INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
REQUEST_TOO_LARGE = KVError(INVALID_ARGUMENT, "etcdserver: request is too large")
APPLIED_RESULT_LOST = KVError(UNAVAILABLE, "etcdserver: request timed out: the request was applied, but the master "
                                           "restarted before it could answer: read to see its effect")
VALUE_PROVIDED = KVError(INVALID_ARGUMENT, "etcdserver: value is provided")
LEASE_PROVIDED = KVError(INVALID_ARGUMENT, "etcdserver: lease is provided")
KEY_NOT_FOUND = KVError(INVALID_ARGUMENT, "etcdserver: key not found")
NOT_LEADER = KVError(FAILED_PRECONDITION, "etcdserver: not leader")
NO_LEADER = KVError(UNAVAILABLE, "etcdserver: no leader")
BAD_LEADER_TRANSFEREE = KVError(FAILED_PRECONDITION, "etcdserver: bad leader transferee")
AUTH_NOT_ENABLED = KVError(FAILED_PRECONDITION, "etcdserver: authentication is not enabled")


def invalid(message: str) -> KVError:
    return KVError(INVALID_ARGUMENT, message)


def internal(message: str) -> KVError:
    return KVError(INTERNAL, message)


def unavailable(message: str) -> KVError:
    return KVError(UNAVAILABLE, message)
