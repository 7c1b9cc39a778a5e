"""Our etcd .proto files: the committed descriptor set is what they compile to, and they are wire-compatible with
etcd's own (as shipped, generated, by the aetcd client library): same message names, same field numbers and types."""
import importlib

from google.protobuf import descriptor_pb2

from kvstore import etcdpb
from kvstore.etcdpb.compile import compiled


def _files(data: bytes) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    return {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(data).file}


def test_the_committed_descriptor_set_is_what_the_proto_files_compile_to():
    with open(etcdpb.DESCRIPTOR_SET, "rb") as f:
        committed = _files(f.read())
    assert committed == _files(compiled()), "run `python -m kvstore.etcdpb.compile` and commit etcd.binpb"


def _fields(descriptor) -> dict[int, tuple[str, int]]:
    return {f.number: (f.name, f.type) for f in descriptor.fields}


# What etcd 3.5 added after the 3.4 API we serve (aetcd ships 3.5's protos).
NEWER_MESSAGES = {"LeaseCheckpoint", "LeaseCheckpointRequest", "LeaseCheckpointResponse", "DowngradeRequest",
                  "DowngradeResponse", "AuthStatusRequest", "AuthStatusResponse"}
NEWER_FIELDS = {("MemberListRequest", 1), ("AuthUserAddRequest", 4), ("AuthUserChangePasswordRequest", 3)}


def test_every_message_has_etcds_field_numbers_names_and_types():
    checked = 0
    for module, package in (("aetcd.rpc.rpc_pb2", "etcdserverpb"), ("aetcd.rpc.kv_pb2", "mvccpb")):
        theirs = importlib.import_module(module).DESCRIPTOR
        for name, descriptor in theirs.message_types_by_name.items():
            if name in NEWER_MESSAGES:
                continue
            ours = _fields(etcdpb.pool().FindMessageTypeByName(f"{package}.{name}"))
            expected = {n: f for n, f in _fields(descriptor).items() if (name, n) not in NEWER_FIELDS}
            assert ours == expected, f"{package}.{name}"
            checked += 1
    assert checked >= 90


def test_every_rpc_of_the_six_services_is_declared():
    methods = {s: [m.name for m in etcdpb.service(f"etcdserverpb.{s}").methods]
               for s in ("KV", "Watch", "Lease", "Cluster", "Maintenance", "Auth")}
    assert methods["KV"] == ["Range", "Put", "DeleteRange", "Txn", "Compact"]
    assert methods["Maintenance"] == ["Alarm", "Status", "Defragment", "Hash", "HashKV", "Snapshot", "MoveLeader"]
    assert len(methods["Auth"]) == 16
