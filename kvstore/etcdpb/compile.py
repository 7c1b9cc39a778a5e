"""Compile the .proto files here into etcd.binpb: `python -m kvstore.etcdpb.compile` (needs grpcio-tools, a
test dependency). Run it after changing a .proto file, and commit both."""
from __future__ import annotations

import os
import sys
import tempfile

from kvstore.etcdpb import DESCRIPTOR_SET, HERE, PROTO_FILES


def compile_protos(out: str) -> None:
    from grpc_tools import protoc  # a build-time tool only

    args = ["protoc", f"-I{HERE}", f"--descriptor_set_out={out}", "--include_imports",
            *(os.path.join(HERE, f) for f in PROTO_FILES)]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {', '.join(PROTO_FILES)} in {HERE}")


def compiled() -> bytes:
    """What compiling the .proto files gives now."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "etcd.binpb")
        compile_protos(out)
        with open(out, "rb") as f:
            return f.read()


if __name__ == "__main__":
    data = compiled()
    with open(DESCRIPTOR_SET, "wb") as f:
        f.write(data)
    print(f"wrote {DESCRIPTOR_SET} ({len(data)} bytes)", file=sys.stderr)
