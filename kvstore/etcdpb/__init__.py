"""etcd's v3 API messages, from our own .proto files, without generated Python code.

`rpc.proto`, `kv.proto` and `auth.proto` here are the source. `python -m kvstore.etcdpb.compile` turns them into
`etcd.binpb` (a FileDescriptorSet, committed; a test checks it matches the .proto files), and this module loads it
into a private descriptor pool, so a process that also imports an etcd client library (which registers its own
`etcdserverpb` messages in protobuf's default pool) has no clash of names:

    from kvstore import etcdpb
    req = etcdpb.message("etcdserverpb.RangeRequest")(key=b"foo")
    etcdpb.service("etcdserverpb.KV").methods   # Range, Put, DeleteRange, Txn, Compact
"""
from __future__ import annotations

import os
from functools import cache

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import ServiceDescriptor

HERE = os.path.dirname(__file__)
DESCRIPTOR_SET = os.path.join(HERE, "etcd.binpb")
PROTO_FILES = ("kv.proto", "auth.proto", "rpc.proto")  # dependencies first


@cache
def pool() -> descriptor_pool.DescriptorPool:
    """The messages and services of etcd.binpb, loaded on first use."""
    with open(DESCRIPTOR_SET, "rb") as f:
        files = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    return pool


@cache
def message(full_name: str) -> type:
    """The message class for e.g. "etcdserverpb.PutRequest" or "mvccpb.KeyValue"."""
    return message_factory.GetMessageClass(pool().FindMessageTypeByName(full_name))


def service(full_name: str) -> ServiceDescriptor:
    return pool().FindServiceByName(full_name)
