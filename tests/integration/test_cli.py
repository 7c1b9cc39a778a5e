"""`raftkube up` and `raftkube status` as a user runs them: start, use, SIGTERM, start again."""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from raftkube import cluster_file, kv_access, up


def _wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout}s")


def _post(info, url, body):
    """POST to a KV port with the operator's client certificate, as every raftkube tool does."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5, context=kv_access.context(info["kv_tls"])) as r:
        return json.load(r)


def _up(state_dir, masters, *flags):
    """`raftkube up` running, once it has printed its quickstart; (the process, the quickstart's lines)."""
    proc = subprocess.Popen([sys.executable, "-m", "raftkube", "up", "--masters", str(masters),
                             "--state-dir", state_dir, *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    printed: list[str] = []

    def quickstart_printed() -> bool:
        printed.append(proc.stdout.readline())
        return proc.poll() is not None or printed[-1].startswith("Press Ctrl-C")

    try:
        _wait_for(quickstart_printed, what="`raftkube up` ready")
        assert proc.poll() is None, "`raftkube up` exited early"
    except BaseException:
        proc.send_signal(signal.SIGTERM)  # it stops the masters it started
        proc.wait(timeout=30)
        raise
    return proc, printed


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def _pids(info):
    return [m["pid"] for m in info["masters"]] + [n["pid"] for n in info.get("nodes", [])]


BUSY_LOOP = """
import asyncio
from raftkube import up

async def ping(reader, writer):
    while True:
        writer.write(b"x" * 100)
        await writer.drain()
        await reader.readexactly(100)

async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()

async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pings = [asyncio.create_task(ping(*await asyncio.open_connection("127.0.0.1", port))) for _ in range(8)]
    print("busy", flush=True)
    try:
        await server.serve_forever()
    finally:
        print("cleaned up", flush=True)

try:
    up.run_until_signal(main())
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_a_signal_stops_a_busy_loop_between_its_callbacks(tmp_path):
    """`up`, `campaign` and `lab` run their loop through up.run_until_signal: SIGTERM (twice, impatiently) cancels the
    main task, its clean-up runs and the process leaves. A handler raising KeyboardInterrupt raised it inside
    whatever task or callback ran (a traceback for each), and once left a task that never woke: `up` hung in
    asyncio.run's clean-up with its masters running."""
    (tmp_path / "busy.py").write_text(BUSY_LOOP)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "busy.py")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "busy\n"
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out == "cleaned up\ninterrupted\n", out + err
    assert "KeyboardInterrupt" not in err


def test_up_status_sigterm_and_up_again_keeps_the_data(tmp_path):
    state_dir = str(tmp_path / "state")
    proc, _ = _up(state_dir, 3)
    try:
        info = cluster_file.read(state_dir)
        assert [m["name"] for m in info["masters"]] == ["m1", "m2", "m3"]
        assert all(m["argv"][3:5] == ["master", "--name"] for m in info["masters"])
        _post(info, info["masters"][0]["kv"] + "/v3/kv/put", {"key": "a2VlcA==", "value": "bWU="})
        status = subprocess.run([sys.executable, "-m", "raftkube", "status", "--state-dir", state_dir],
                                capture_output=True, text=True, timeout=30)
        assert status.returncode == 0
        lines = status.stdout.splitlines()
        assert sum(" leader " in line for line in lines[1:4]) == 1 and sum(" follower " in line for line in lines) == 2
        assert lines[4].startswith("leader: m") and lines[5].startswith("controller-manager: ")
        # kubectl goes through the load balancer `up` runs: killing a master does not stop it.
        assert info["api"] not in [m["api"] for m in info["masters"]]
        if shutil.which("kubectl") is None:
            pytest.skip("kubectl is not installed")
        env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": info["kubeconfig"]}
        kubectl = ["kubectl", "get", "namespace", "default", "-o", "name"]
        assert subprocess.run(kubectl, env=env, capture_output=True, text=True, timeout=30).stdout.strip() == \
            "namespace/default"
        subprocess.run([sys.executable, "-m", "raftkube", "chaos", "kill", "m1", "--state-dir", state_dir],
                       check=True, timeout=30)
        got = _wait_for(lambda: subprocess.run(kubectl, env=env, capture_output=True, text=True, timeout=30)
                        .stdout.strip(), what="kubectl through the balancer after m1's death")
        assert got == "namespace/default"
        watch = subprocess.Popen(["kubectl", "get", "namespaces", "-w", "-o", "name"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        watch.stdout.readline()  # a watch open through the balancer when `up` stops
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)  # an impatient second one must not leave masters behind
        proc.wait(timeout=30)
        left = [pid for pid in _pids(info) if _alive(pid)]
        left_file = os.path.exists(cluster_file.path(state_dir))
        if left or left_file:
            up.stop(state_dir)  # `up` did not clean up: do it for it, then fail
    assert not left, "a master or node outlived `raftkube up`"
    assert not left_file
    watch.kill()
    said = proc.stdout.read()
    assert "stopping ..." in said and "Traceback" not in said, said  # the watch's connection closed quietly

    proc, _ = _up(state_dir, 3, "--enable-failpoints")
    try:
        info = cluster_file.read(state_dir)
        got = _post(info, info["masters"][2]["kv"] + "/v3/kv/range", {"key": "a2VlcA=="})
        assert got["kvs"][0]["value"] == "bWU="
        for verb in ("partition", "heal"):  # asked for this time
            subprocess.run([sys.executable, "-m", "raftkube", "chaos", verb, "m2", "--state-dir", state_dir],
                           check=True, timeout=30)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)  # Ctrl-C twice: the same
        proc.wait(timeout=30)
        left = [pid for pid in _pids(info) if _alive(pid)]
        if left:
            up.stop(state_dir)
    assert not left, "a master or node outlived `raftkube up`"


def test_a_single_master_cluster_works_alone(tmp_path):
    state_dir = str(tmp_path / "one")
    proc, printed = _up(state_dir, 1)
    try:
        info = cluster_file.read(state_dir)
        kv = info["masters"][0]["kv"]
        first = int(_post(info, kv + "/v3/kv/put", {"key": "eA==", "value": "eA=="})["header"]["revision"])
        again = _post(info, kv + "/v3/kv/put", {"key": "eA==", "value": "eQ==", "prev_kv": True})
        # Alone, a master is its own majority (its controllers and nodes write too: revisions may jump).
        assert int(again["header"]["revision"]) > first and again["prev_kv"]["value"] == "eA=="
        assert _post(info, kv + "/v3/kv/range", {"key": "eA=="})["kvs"][0]["value"] == "eQ=="
        _the_quickstarts_store_lines_work_as_printed(printed)
        # Failpoints are off unless `up` is asked for them, and `chaos partition` says how.
        cut = subprocess.run([sys.executable, "-m", "raftkube", "chaos", "partition", "m1", "--state-dir", state_dir],
                             capture_output=True, text=True, timeout=30)
        assert cut.returncode != 0 and "raftkube up --enable-failpoints" in cut.stderr, cut.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _the_quickstarts_store_lines_work_as_printed(printed):
    """The quickstart's curl and etcdctl lines, pasted into a shell: the put, the range, the etcdctl get."""
    start = next(i for i, line in enumerate(printed) if line.strip().startswith("Talk to the store"))
    lines = [line.strip() for line in printed[start + 1:]
             if line.strip().startswith(("TLS=", "curl -s $TLS", "ETCDCTL_API=3 etcdctl $TLS"))]
    assert len(lines) == 4, printed  # the variable, the put, the range, the get (not the watch, which waits)
    script = "set -e\n" + "\n".join(lines) + "\n"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert '"value":"YmFy"' in out.stdout and out.stdout.rstrip().endswith("foo\nbar"), out.stdout


def _lone_master(tmp_path, *flags):
    """`raftkube master` alone, without its control plane, on free ports: (argv, [raft, kv, api ports])."""
    ports = [up.free_port() for _ in range(3)]
    argv = [sys.executable, "-m", "raftkube", "master", "--name", "m1", "--raft", f"127.0.0.1:{ports[0]}",
            "--kv-listen", f"127.0.0.1:{ports[1]}", "--api-listen", f"127.0.0.1:{ports[2]}",
            "--data-dir", str(tmp_path / "m1"), "--no-control-plane", *flags]
    return argv, ports


@pytest.mark.parametrize("flags, says", [
    (["--authorization-mode", "Bogus"], "--authorization-mode 'Bogus'"),
    (["--token-file", "/nonexistent/tokens.csv"], "/nonexistent/tokens.csv"),
])
def test_a_master_stops_on_a_bad_kube_api_flag_and_says_which(tmp_path, flags, says):
    """The kube API's flags are read once the store serves (raftkube/master_api.py): a bad one still stops the
    master, with what to fix."""
    out = subprocess.run(_lone_master(tmp_path, *flags)[0], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and says in out.stderr, out.stderr


def test_a_stopping_master_cuts_open_watches_and_leaves_promptly(tmp_path):
    """SIGTERM: requests in flight get a short grace, then watches, which never end by themselves, are cut and
    the master leaves its Raft group. With aiohttp's default grace a master with these two watches open took 4
    minutes, its replica still talking under its address (a member added back there met its old self)."""
    argv, ports = _lone_master(tmp_path)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def answers(port, method, path, body=None):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request(method, path, body=body)
                response = conn.getresponse()
            except OSError:
                return None
            return conn, response

        _wait_for(lambda: answers(ports[2], "GET", "/readyz"), what="the master's API")
        kv_watch = answers(ports[1], "POST", "/v3/watch", json.dumps({"create_request": {"key": "Zm9v"}}))
        api_watch = answers(ports[2], "GET", "/api/v1/namespaces/default/configmaps?watch=1")
        assert kv_watch[1].status == 200 and api_watch[1].status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
