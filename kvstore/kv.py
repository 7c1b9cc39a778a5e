"""The values the store hands around: a key's state at one revision, and a change event."""
from __future__ import annotations

from typing import NamedTuple

PUT = 0
DELETE = 1


class KeyValue(NamedTuple):
    """One key at one revision, as etcd's mvccpb.KeyValue.

    A tombstone (the key deleted at `mod_revision`) has `version == 0` and an empty value.
    """

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0

    @property
    def is_tombstone(self) -> bool:
        return self.version == 0


class Event(NamedTuple):
    """A change made by one write: `kv` is the new state (a tombstone for DELETE)."""

    type: int
    kv: KeyValue
    prev_kv: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


def tombstone(key: bytes, revision: int) -> KeyValue:
    return KeyValue(key, b"", 0, revision, 0, 0)
