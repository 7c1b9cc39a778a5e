"""A snapshot of the store as one file: what `etcdctl snapshot save` receives, and what `raftkube restore` reads.

etcd streams its bbolt database; raftkube streams its own format, with the same promise: every key with its
value, create and mod revisions, version and lease, the leases with their TTLs, and the store's revision.
A restored cluster starts at that revision with those keys; the history before it is not kept (the restored
store is compacted at the snapshot's revision, so watches and reads start there). As etcd does, the file ends
with the SHA-256 of everything before it, and a damaged file is refused. etcdctl 3.4 checks only the shape of
what it saves (a whole number of 512-byte blocks, then the 32-byte checksum), so the content is padded to that:

    MAGIC | msgpack {"format": 1, "revision": R, "kvs": [[key, value, create, mod, version, lease], ...],
                     "leases": [[id, ttl], ...]} | zeros to a multiple of 512 bytes | sha256 (32 bytes)

Pure: no clock (a restored lease gets its full TTL when the first leader takes office, as after any failover).
"""
from __future__ import annotations

import hashlib
import zlib

import msgpack

from kvstore.kv import KeyValue
from kvstore.mvcc import StateMachine

MAGIC = b"raftkube-snapshot\n"
FORMAT = 1
DIGEST = 32
BLOCK = 512


class BadSnapshot(ValueError):
    pass


def dump(machine: StateMachine) -> bytes:
    kvs = [list(kv) for kv in machine.index.range(b"\0", b"\0")]
    leases = [[lease.id, lease.ttl] for lease in sorted(machine.leases.leases.values(), key=lambda x: x.id)]
    body = MAGIC + msgpack.packb({"format": FORMAT, "revision": machine.revision, "kvs": kvs, "leases": leases})
    body += bytes(-len(body) % BLOCK)
    return body + hashlib.sha256(body).digest()


def load(data: bytes) -> StateMachine:
    """A state machine holding the snapshot's keys, leases and revision (BadSnapshot if it is not one)."""
    if not data.startswith(MAGIC) or len(data) % BLOCK != DIGEST:
        raise BadSnapshot("not a raftkube snapshot (etcdctl snapshot save from a raftkube cluster makes one)")
    body, digest = data[:-DIGEST], data[-DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise BadSnapshot("the snapshot's SHA-256 does not match its content: the file is damaged or truncated")
    try:
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(body))
        unpacker.feed(body[len(MAGIC):])
        content = next(unpacker)  # the zeros after it are padding
        if content.get("format") != FORMAT:
            raise BadSnapshot(f"snapshot format {content.get('format')!r} is not {FORMAT}: made by another version")
        machine = StateMachine()
        for lease_id, ttl in content["leases"]:
            machine.leases.grant(int(lease_id), int(ttl))
        for fields in content["kvs"]:
            kv = KeyValue(*fields)
            machine.index.put(kv)
            machine.leases.attach(kv.lease, kv.key)
        machine.revision = int(content["revision"])
        machine.compact_revision = machine.revision
    except (KeyError, TypeError, ValueError, StopIteration, msgpack.UnpackException) as exc:
        if isinstance(exc, BadSnapshot):
            raise
        raise BadSnapshot(f"the snapshot's content is malformed ({type(exc).__name__}: {exc})") from None
    return machine


def hash_kv(machine: StateMachine, revision: int = 0) -> int:
    """A CRC-32 of every key's state at `revision` (0: the head): equal on replicas that agree (etcd's HashKV)."""
    crc = 0
    for kv in machine.index.range(b"\0", b"\0", revision or None):
        crc = zlib.crc32(msgpack.packb(list(kv)), crc)
    return crc
