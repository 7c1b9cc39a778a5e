"""Benchmark the kubelet-side streams on a 1-master, 1-process-node raftkube cluster: exec round trips and
port-forward throughput, through the API server's relay and the kubelet.

    python bench/streaming.py [--execs 50] [--megabytes 64]

- exec, raw: a WebSocket (v5.channel.k8s.io) to pods/exec running `true`, from the upgrade to the exit status and
  the close: the API server's checks, the relay, the kubelet starting a process. Median and 90th percentile.
- exec, kubectl: `kubectl exec POD -- true`, wall time (kubectl's own start, discovery cache warm, included).
- port-forward: `kubectl port-forward` to a pod whose server sends N MiB on each connection; MiB/s read locally
  (kubectl's SPDY in a WebSocket, the API server's relay, the kubelet's SPDY session and its socket to the pod).
Prints its figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from raftkube import kubeconfig, up  # noqa: E402

SERVER = """
import os, socket
s = socket.create_server((os.environ["POD_IP"], 9000))
block = bytes(1 << 20)
while True:
    conn, _ = s.accept()
    for _ in range({megabytes}):
        conn.sendall(block)
    conn.close()
"""


def kubectl(env: dict, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["kubectl", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60,
                          check=True).stdout


def pod(name: str, command: list[str]) -> str:
    import json
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 1,
                                "containers": [{"name": "main", "image": "python", "command": command}]}})


async def raw_execs(api: str, token: str, ca: str, count: int) -> list[float]:
    url = f"{api}/api/v1/namespaces/default/pods/sleeper/exec?command=true&stdout=true&container=main"
    tls = ssl.create_default_context(cafile=ca)
    took = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        for _ in range(count):
            started = time.perf_counter()
            async with session.ws_connect(url, protocols=["v5.channel.k8s.io"], ssl=tls) as ws:
                async for _msg in ws:
                    pass
            took.append(time.perf_counter() - started)
    return took


def throughput(env: dict, megabytes: int, runs: int = 3) -> list[float]:
    forward = subprocess.Popen(["kubectl", "port-forward", "pod/source", ":9000"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(re.search(r"127\.0\.0\.1:(\d+)", forward.stdout.readline()).group(1))
        rates = []
        for _ in range(runs):
            started, got = time.perf_counter(), 0
            with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
                while chunk := conn.recv(1 << 20):
                    got += len(chunk)
            rates.append(got / (1 << 20) / (time.perf_counter() - started))
            assert got == megabytes << 20, f"{got} bytes of {megabytes} MiB"
        return rates
    finally:
        forward.terminate()
        forward.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--execs", type=int, default=50)
    parser.add_argument("--megabytes", type=int, default=64)
    args = parser.parse_args()
    state = tempfile.mkdtemp(prefix="bench-streaming-")
    info = up.start(state, 1, 0, ("--no-control-plane",))
    try:
        assert up.wait_ready(info), f"the master did not start; logs in {state}/logs"
        up.start_nodes(info, 1, "process", ("--no-proxy",))
        api, token = info["masters"][0]["api"], up.admin_token(state)
        env = {**os.environ, "HOME": state, "KUBECONFIG": kubeconfig.write(f"{state}/kubeconfig", api, token,
                                                                          info["ca"])}
        for _ in range(120):
            if subprocess.run(["kubectl", "get", "node", "n1"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        kubectl(env, "apply", "-f", "-", stdin=pod("sleeper", ["sleep", "3600"]))
        kubectl(env, "apply", "-f", "-", stdin=pod("source", ["python3", "-c", SERVER.format(
            megabytes=args.megabytes)]))
        kubectl(env, "wait", "--for=condition=Ready", "pod/sleeper", "pod/source", "--timeout=60s")
        time.sleep(1)  # the server binds its port after the container is Running
        raw = asyncio.run(raw_execs(api, token, info["ca"], args.execs))
        print(f"exec over a raw WebSocket, {len(raw)} runs: median {statistics.median(raw) * 1000:.1f} ms, "
              f"p90 {statistics.quantiles(raw, n=10)[-1] * 1000:.1f} ms")
        walls = []
        for _ in range(10):
            started = time.perf_counter()
            kubectl(env, "exec", "sleeper", "--", "true")
            walls.append(time.perf_counter() - started)
        print(f"kubectl exec POD -- true, 10 runs: median {statistics.median(walls) * 1000:.0f} ms")
        rates = throughput(env, args.megabytes)
        print(f"port-forward, {args.megabytes} MiB per connection: " + ", ".join(f"{r:.1f}" for r in rates) +
              " MiB/s")
    finally:
        up.stop(state)


if __name__ == "__main__":
    main()
