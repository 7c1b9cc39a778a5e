"""Big concurrent writes against the leader: do followers ever drop entries they already acknowledged?

    python bench/resends.py [--seconds 25] [--writers 16] [--value-bytes 30000] [--strace]

Starts a throw-away 3-master cluster and has `--writers` clients put `--value-bytes` values through the
leader's KV API for `--seconds`. Acknowledgements wait for each follower's fdatasync and so arrive late;
a Raft leader then resends entries, and a follower that handled a resend as delete-then-add would cut its
journal and, in pysyncobj's words, be "truncating already-applied log entries". It prints, for each follower:
the conflicts counter (`raftkube_raft_log_conflicts_total`: entries dropped from the end of the log), the
number of those log lines, and with `--strace` the ftruncate calls on its journal (strace on its pid). A
healthy run prints zeros: a follower only ever drops entries that conflict with a new leader's log.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kvstore.client import KVClient  # noqa: E402
from harness import TRANSIENT  # noqa: E402
from raftkube_cluster import RaftkubeCluster  # noqa: E402
from raftkube import chaos, kv_access, up  # noqa: E402


def conflicts(kv_url: str, tls: ssl.SSLContext | None) -> int:
    with urllib.request.urlopen(kv_url + "/metrics", timeout=5, context=tls) as r:
        text = r.read().decode()
    return int(float(re.search(r"^raftkube_raft_log_conflicts_total (\S+)$", text, re.M).group(1)))


async def write(endpoint: str, tls: ssl.SSLContext | None, seconds: float, writers: int, size: int
                ) -> tuple[int, int]:
    """(puts acknowledged, puts that failed)"""
    done = failed = 0
    until = time.monotonic() + seconds

    async def writer(w: int) -> None:
        nonlocal done, failed
        async with KVClient(endpoint, timeout=10, tls=tls) as kv:
            i = 0
            while time.monotonic() < until:
                i += 1
                try:
                    await kv.put(b"big/%d/%d" % (w, i % 50), os.urandom(size))
                    done += 1
                except TRANSIENT:
                    failed += 1

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return done, failed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=25.0)
    p.add_argument("--writers", type=int, default=16)
    p.add_argument("--value-bytes", type=int, default=30_000)
    p.add_argument("--strace", action="store_true", help="count ftruncate calls of each follower (needs strace)")
    args = p.parse_args()
    cluster = RaftkubeCluster(3)
    try:
        cluster.start()
        if not up.wait_ready(cluster.info):
            raise SystemExit("the masters did not become ready")
        leader = chaos.leader(cluster.info)
        followers = [m for m in cluster.info["masters"] if m["name"] != leader]
        tls = kv_access.context(cluster.kv_tls)
        before = {m["name"]: conflicts(m["kv"], tls) for m in followers}
        traces = {m["name"]: subprocess.Popen(["strace", "-f", "-e", "trace=ftruncate", "-p", str(m["pid"]), "-o",
                                               os.path.join(cluster.state_dir, f"{m['name']}.strace")],
                                              stderr=subprocess.DEVNULL) for m in followers} if args.strace else {}
        time.sleep(0.5 if traces else 0)  # strace attaches
        puts, failed = asyncio.run(write(cluster.endpoint(leader), tls, args.seconds, args.writers,
                                         args.value_bytes))
        for t in traces.values():
            t.terminate()
            t.wait()
        print(f"{puts} puts of {args.value_bytes} bytes acknowledged ({failed} failed) by {args.writers} writers "
              f"in {args.seconds:g}s through the leader {leader}")
        for m in followers:
            with open(os.path.join(cluster.logs(), f"{m['name']}.log")) as f:
                truncating = f.read().count("truncating already-applied log entries")
            line = (f"  follower {m['name']}: {conflicts(m['kv'], tls) - before[m['name']]} log conflicts, "
                    f"{truncating} 'truncating already-applied' lines")
            if traces:
                with open(os.path.join(cluster.state_dir, f"{m['name']}.strace")) as f:
                    line += f", {sum(1 for t in f if 'ftruncate(' in t)} ftruncate calls"
            print(line)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
