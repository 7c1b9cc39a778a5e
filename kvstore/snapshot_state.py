"""The state machine's keys and history in a snapshot: a few msgpack blobs instead of a pickle per object.

pysyncobj pickles the state machine into each snapshot, and a restarting master unpickles it before it serves.
Pickled one by one, every KeyValue and Event costs a Python call to rebuild (about a second for 100,000 keys
with their history); packed here, the states of every key are one msgpack blob that unpacks in C and becomes
KeyValues through `tuple.__new__`, with no Python frame per state. The history is not stored twice: each event
names the index state it shows (key and mod revision) and the one before it, and is rebuilt from the index.
An event the index no longer holds exactly (none should be) is kept whole, so a snapshot is never wrong.
"""
from __future__ import annotations

import functools
from typing import Any, Iterable

import msgpack

from kvstore.kv import Event, KeyValue

_as_kv = functools.partial(tuple.__new__, KeyValue)
_as_event = functools.partial(tuple.__new__, Event)
_NONE = -1  # "no previous state" in an event reference


def pack_states(states_by_key: Iterable[list[KeyValue]]) -> bytes:
    """Every key's states, oldest first, keys in order (a KeyValue packs as a msgpack array of its fields)."""
    return msgpack.packb(list(states_by_key))


def unpack_states(blob: bytes) -> list[list[KeyValue]]:
    return [list(map(_as_kv, states)) for states in msgpack.unpackb(blob, use_list=False)]


def pack_history(history: list[Event], states_of) -> bytes:
    """`states_of(key)`: that key's states in the index. Each event as [type, key, revision, previous revision],
    or whole when the index does not hold exactly its states."""
    out: list[Any] = []
    for ev in history:
        states = states_of(ev.kv.key) or ()
        prev = ev.prev_kv
        if _find(states, ev.kv.mod_revision) == ev.kv and (prev is None or _find(states, prev.mod_revision) == prev):
            out.append((ev.type, ev.kv.key, ev.kv.mod_revision, _NONE if prev is None else prev.mod_revision))
        else:
            out.append((ev.type, ev.kv, prev))
    return msgpack.packb(out)


def unpack_history(blob: bytes, states_of) -> list[Event]:
    history: list[Event] = []
    for item in msgpack.unpackb(blob, use_list=False):
        if len(item) == 4:
            kind, key, revision, prev_revision = item
            states = states_of(key)
            history.append(_as_event((kind, _find(states, revision),
                                      None if prev_revision == _NONE else _find(states, prev_revision))))
        else:
            kind, kv, prev = item
            history.append(_as_event((kind, _as_kv(kv), None if prev is None else _as_kv(prev))))
    return history


def _find(states, revision: int) -> KeyValue | None:
    """The state with this mod revision (a key has few states: newest first)."""
    for kv in reversed(states):
        if kv.mod_revision == revision:
            return kv
    return None
