"""`etcdctl check perf --load=s` (etcdctl 3.4's own benchmark: 60 s of 150 puts/s from 50 clients, 256-byte keys,
1 KiB values) against every member of a cluster, and what it concluded: throughput, slowest request, standard
deviation, and PASS or FAIL with etcd's own thresholds (above 90% of 150/s, slowest under 0.5 s, stddev
under 0.1 s)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

FIGURES = {  # the figure's label -> a pattern for its value in etcdctl's output
    "check perf throughput (writes/s)": r"Throughput (?:is|too low:) (\d+) writes/s",
    "check perf slowest request (s)": r"Slowest request took (?:too long: )?([\d.]+)s",
    "check perf stddev (s)": r"Stddev (?:is|too high:) ([\d.]+)s",
}


def etcdctl() -> str:
    found = shutil.which("etcdctl")
    if not found:
        raise SystemExit("bench: --check-perf needs etcdctl 3.4: apt-get install -y etcd-client")
    return found


def check_perf(endpoints: list[str], tls: list[str], load: str = "s") -> tuple[dict[str, float], str]:
    """(figures, verdict): the verdict is etcdctl's last line, PASS or FAIL, with its error lines if any. `tls`:
    etcdctl's --cacert, --cert and --key flags."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL")}, "ETCDCTL_API": "3"}
    out = subprocess.run([etcdctl(), "--endpoints", ",".join(endpoints), *tls, "check", "perf", f"--load={load}"],
                         capture_output=True, text=True, timeout=300, env=env)
    text = out.stdout + out.stderr
    figures = {}
    for label, pattern in FIGURES.items():
        found = re.search(pattern, text)
        if found:
            figures[label] = float(found.group(1))
    errors = [line for line in text.splitlines() if line.startswith("FAIL: ERROR")]
    verdict = "PASS" if out.returncode == 0 else "FAIL"
    return figures, " ".join([verdict, *errors[:3]])
