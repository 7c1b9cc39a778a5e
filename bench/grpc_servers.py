"""Which gRPC server to run on a master's event loop: a minimal unary call served three ways, same client.

    python bench/grpc_servers.py [--seconds 4] [--servers ours grpc.aio grpclib]

Each server runs alone in a process of its own on uvloop and answers etcd's KV/Put with a constant PutResponse:
`ours` (kvstore/grpc_wire.py on kvstore/http2.py, what the masters serve), `grpc.aio` (grpcio, C-core with its own
threads) and `grpclib` (pure asyncio on h2; not a dependency: `pip install grpclib` to include it). One grpc.aio
client in this process calls it with 1, 16 and 64 calls in flight; printed: calls/s, p50, and the server process's
CPU time per call (user + system, from /proc), the figure that matters on a master, whose loop also runs Raft.
Asserts nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import grpc  # noqa: E402
import uvloop  # noqa: E402

from kvstore.etcdpb import message  # noqa: E402

PutRequest = message("etcdserverpb.PutRequest")
PutResponse = message("etcdserverpb.PutResponse")
PATH = "/etcdserverpb.KV/Put"


async def serve(kind: str, port: int) -> None:
    async def put(request, context):
        return PutResponse(header={"revision": 1})

    if kind == "ours":
        from kvstore.grpc_wire import GrpcServer, Method
        server = GrpcServer({PATH: Method(put, PutRequest)})
        await asyncio.get_running_loop().create_server(server.connection, "127.0.0.1", port)
    elif kind == "grpc.aio":
        handler = grpc.method_handlers_generic_handler("etcdserverpb.KV", {"Put": grpc.unary_unary_rpc_method_handler(
            put, request_deserializer=PutRequest.FromString, response_serializer=PutResponse.SerializeToString)})
        aio = grpc.aio.server()
        aio.add_generic_rpc_handlers([handler])
        aio.add_insecure_port(f"127.0.0.1:{port}")
        await aio.start()
    else:
        from grpclib.const import Cardinality, Handler
        from grpclib.server import Server

        class Service:
            async def put(self, stream) -> None:
                await stream.recv_message()
                await stream.send_message(PutResponse(header={"revision": 1}))

            def __mapping__(self):
                return {PATH: Handler(self.put, Cardinality.UNARY_UNARY, PutRequest, PutResponse)}

        await Server([Service()]).start("127.0.0.1", port)
    await asyncio.Event().wait()


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(port: int, pid: int, inflight: int, seconds: float) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        put = channel.unary_unary(PATH, request_serializer=PutRequest.SerializeToString,
                                  response_deserializer=PutResponse.FromString)
        request = PutRequest(key=b"key", value=b"v" * 100)
        await put(request, timeout=10)
        latencies: list[float] = []
        stop = False

        async def caller() -> None:
            while not stop:
                start = time.perf_counter()
                await put(request, timeout=10)
                latencies.append(time.perf_counter() - start)

        cpu, start = cpu_seconds(pid), time.perf_counter()
        callers = [asyncio.create_task(caller()) for _ in range(inflight)]
        await asyncio.sleep(seconds)
        stop = True
        await asyncio.gather(*callers)
        elapsed, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu
    latencies.sort()
    return (f"{inflight:3d} in flight: {len(latencies) / elapsed:6.0f} calls/s, p50 {latencies[len(latencies) // 2] * 1e3:6.2f} ms, "
            f"server CPU {cpu / len(latencies) * 1e6:4.0f} us/call")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--servers", nargs="*", default=["ours", "grpc.aio", "grpclib"])
    p.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)  # a server's process
    args = p.parse_args()
    if args.serve:
        uvloop.run(serve(args.serve[0], int(args.serve[1])))
        return
    for kind in args.servers:
        if kind == "grpclib" and subprocess.run([sys.executable, "-c", "import grpclib"]).returncode:
            print("grpclib: not installed (pip install grpclib), skipped")
            continue
        port = free_port()
        server = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port)])
        try:
            time.sleep(1.5)
            print(kind)
            for inflight in (1, 16, 64):
                print("  " + asyncio.run(drive(port, server.pid, inflight, args.seconds)), flush=True)
        finally:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
