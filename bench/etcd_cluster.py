"""A throw-away etcd cluster on loopback, for comparison: N members of the system's etcd (3.4).

Each member gets free 127.0.0.1 ports and its own data dir under one temp dir; nothing listens
on any other address. Its client port speaks TLS and asks for client certificates, as raftkube's KV
ports do (the same kind of certificates, raftkube/kv_pki.py), so both pay for TLS alike. A killed member
restarts with the same command line and data dir (etcd then ignores the --initial-* flags and rejoins from
its data).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile

from raftkube import kv_pki
from raftkube.up import free_port

ETCD = "/usr/bin/etcd"


def ensure_etcd() -> str:
    """The etcd binary; try `apt-get install etcd-server` once if it is missing."""
    found = shutil.which("etcd") or (ETCD if os.path.exists(ETCD) else None)
    if found:
        return found
    print("etcd is not installed; trying `apt-get install -y etcd-server` ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "install", "-y", "etcd-server"], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        raise SystemExit(f"bench: --etcd needs etcd 3.4 at {ETCD}, and installing it failed ({exc}). "
                         f"Install it by hand: apt-get install -y etcd-server\n{detail.decode()[-500:]}")
    found = shutil.which("etcd") or (ETCD if os.path.exists(ETCD) else None)
    if not found:
        raise SystemExit("bench: etcd-server installed, yet no `etcd` binary found")
    return found


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class EtcdCluster:
    label = "etcd"

    def __init__(self, members: int = 3, binary: str = ETCD) -> None:
        self.binary = binary
        self.names = [f"e{i + 1}" for i in range(members)]
        self.keep_logs = False
        self.dir = ""
        self.argv: dict[str, list[str]] = {}
        self.client_urls: dict[str, str] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.kv_tls: dict[str, str] | None = None

    def start(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-etcd-")
        ports = _free_ports(2 * len(self.names))
        peer_urls = {n: f"http://127.0.0.1:{ports[2 * i]}" for i, n in enumerate(self.names)}
        self.client_urls = {n: f"https://127.0.0.1:{ports[2 * i + 1]}" for i, n in enumerate(self.names)}
        pki = os.path.join(self.dir, "pki")
        kv_pki.ensure(pki, {n: kv_pki.LOCAL_NAMES for n in self.names}, servers_are_clients=True)
        self.kv_tls = kv_pki.cluster_entry(pki)
        initial = ",".join(f"{n}={url}" for n, url in peer_urls.items())
        token = "bench-" + secrets.token_hex(4)
        for name in self.names:
            self.argv[name] = [
                self.binary, "--name", name, "--data-dir", os.path.join(self.dir, name),
                "--listen-peer-urls", peer_urls[name], "--initial-advertise-peer-urls", peer_urls[name],
                "--listen-client-urls", self.client_urls[name],
                "--advertise-client-urls", self.client_urls[name],
                "--initial-cluster", initial, "--initial-cluster-token", token,
                "--initial-cluster-state", "new", "--logger", "zap", "--log-outputs", "stderr",
                "--cert-file", kv_pki.pair(pki, kv_pki.server_leaf(name))[0],
                "--key-file", kv_pki.pair(pki, kv_pki.server_leaf(name))[1],
                "--client-cert-auth", "--trusted-ca-file", self.kv_tls["ca"],
            ]
            self._spawn(name)

    def _spawn(self, name: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}  # flags only
        with open(os.path.join(self.dir, f"{name}.log"), "ab") as log:
            self.procs[name] = subprocess.Popen(self.argv[name], stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    def endpoint(self, name: str) -> str:
        return self.client_urls[name]

    def grpc_endpoint(self, name: str) -> str:
        return self.client_urls[name]  # etcd serves gRPC and its JSON gateway on one port

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def restart(self, name: str) -> None:
        self._spawn(name)

    def stop(self) -> None:
        # kill -9: the data is thrown away, and a graceful stop would first try to hand over
        # leadership to members that are stopping too (seconds, for nothing).
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            proc.wait()
        self.procs.clear()
        if self.dir:
            if self.keep_logs:
                for name in self.names:
                    shutil.rmtree(os.path.join(self.dir, name), ignore_errors=True)
                print(f"  etcd logs kept in {self.dir}", flush=True)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""

    def logs(self) -> str:
        return self.dir
