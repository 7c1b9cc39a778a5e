"""The state machine's keys and history in a snapshot: a few msgpack blobs instead of a pickle per object.

pysyncobj pickles the state machine into each snapshot, and a restarting master unpickles it before it serves.
Pickled one by one, every KeyValue and Event costs a Python call to rebuild (about a second for 100,000 keys
with their history); packed here, the states of every key are one msgpack blob that unpacks in C and becomes
KeyValues through `tuple.__new__`, with no Python frame per state. The history is not stored twice: each event
is four numbers (its type, its key's place, the places of its state and of the one before it in that key's
list), and is rebuilt from the index's lists. If an event is not exactly in the index (none should be), the
whole history is kept as it is, so a snapshot is never wrong.
"""
from __future__ import annotations

import functools
from itertools import islice

import msgpack

from kvstore.kv import Event, KeyValue

_as_kv = functools.partial(tuple.__new__, KeyValue)
_as_event = functools.partial(tuple.__new__, Event)
_NONE = -1  # "no previous state" in an event reference


def pack_states(states_by_key: list[list[KeyValue]]) -> bytes:
    """Every key's states, oldest first, keys in order, as one flat array (a KeyValue packs as an array of its
    fields) and how many states each key has: nil when every key has one, as after a compaction. A flat array
    comes back through one `map`, not a list per key (100,000 keys of one state: 0.12 -> 0.09 s)."""
    counts = [len(states) for states in states_by_key]
    flat = [kv for states in states_by_key for kv in states]
    return msgpack.packb([None if counts.count(1) == len(counts) else counts, flat])


def unpack_states(blob: bytes, *, nested: bool = False) -> list[list[KeyValue]]:
    """`nested`: a blob written before the flat array, one array of states per key."""
    if nested:
        return [list(map(_as_kv, states)) for states in msgpack.unpackb(blob, use_list=False)]
    counts, flat = msgpack.unpackb(blob, use_list=False)
    kvs = list(map(_as_kv, flat))
    if counts is None:
        return [[kv] for kv in kvs]
    each = iter(kvs)
    return [list(islice(each, n)) for n in counts]


def pack_history(history: list[Event], states_by_key: list[list[KeyValue]]) -> bytes:
    """`states_by_key`: the index's lists, in the order `pack_states` packs them. Each event becomes four numbers:
    its type, its key's place in that order, the places of its state and of the state before it (-1: none). A
    previous state the index dropped (an event at the compaction revision) is kept whole beside them; if an
    event's own state is not in the index (none should be), every event is kept whole."""
    where = {states[0].key: (k, states) for k, states in enumerate(states_by_key) if states}
    types, keys, places, prev_places, gone = [], [], [], [], {}
    for i, ev in enumerate(history):
        k, states = where.get(ev.kv.key, (None, ()))
        place = _place(states, ev.kv)
        if place is None:
            return msgpack.packb({"whole": history})
        prev_place = _place(states, ev.prev_kv)
        if prev_place is None and ev.prev_kv is not None:
            gone[i] = ev.prev_kv
        types.append(ev.type)
        keys.append(k)
        places.append(place)
        prev_places.append(_NONE if prev_place is None else prev_place)
    return msgpack.packb({"types": types, "keys": keys, "places": places, "prev_places": prev_places,
                          "gone": list(gone.items())})


def unpack_history(blob: bytes, states_by_key: list[list[KeyValue]]) -> list[Event]:
    packed = msgpack.unpackb(blob, use_list=False, strict_map_key=False)
    if "whole" in packed:
        return [_as_event((kind, _as_kv(kv), None if prev is None else _as_kv(prev))) for kind, kv, prev in packed["whole"]]
    lists = [states_by_key[k] for k in packed["keys"]]
    kvs = [states[p] for states, p in zip(lists, packed["places"])]
    prevs = [None if p == _NONE else states[p] for states, p in zip(lists, packed["prev_places"])]
    for i, prev in packed["gone"]:
        prevs[i] = _as_kv(prev)
    return list(map(_as_event, zip(packed["types"], kvs, prevs)))


def _place(states, kv: KeyValue | None) -> int | None:
    """Where `kv` is in its key's states (a key has few: newest first), None if it is not there."""
    if kv is None:
        return None
    for i in range(len(states) - 1, -1, -1):
        if states[i] == kv:
            return i
    return None
