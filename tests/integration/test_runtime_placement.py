"""The process runtime without a cluster, in both placements (node/isolation.py): Direct, what a node that is not
root does (the node's user, the container's directory, symlinked volumes), and Isolated (as root: a namespace, a root
and a uid of the container's own). A container and an exec see the same place; a command that cannot start is a
RunContainerError or an ExecFailed with enter.py's reason, never a started container that dies at once."""
from __future__ import annotations

import os

import pytest

from node import log_format
from node.host_paths import HostPaths
from node.isolation import Direct, Isolated
from node.pod_config import PodConfig
from node.runtime import ContainerError
from node.runtime_process import ProcessRuntime
from node.sandbox import Sandboxes
from tests.integration.cluster import eventually

POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
       "spec": {"volumes": [{"name": "work", "emptyDir": {}}]}}
CONTAINER = {"name": "main", "command": ["sh", "-c", "id -u; pwd; echo made > work/made; exec sleep 600"],
             "volumeMounts": [{"name": "work", "mountPath": "/work"}]}
PLACEMENTS = [pytest.param(Direct(), id="direct"),
              pytest.param(Isolated(uid=4321, gid=4321), id="isolated",
                           marks=pytest.mark.skipif(os.geteuid() != 0, reason="isolation needs root"))]


async def started(placement, tmp_path, container=CONTAINER):
    runtime = ProcessRuntime(placement=placement, host_paths=HostPaths([]))
    sandbox = Sandboxes(str(tmp_path), "127.1.9.0/24").open(POD)
    await runtime.prepare(sandbox, POD, PodConfig())
    env = {"RAFTKUBE_ROOT": runtime.container_root(sandbox, container["name"])}
    return runtime, sandbox, await runtime.start(sandbox, POD, container, env), env


def logged(sandbox) -> list[str]:
    try:
        with open(sandbox.log_path("main"), "rb") as f:
            return [e.content.decode().strip() for e in log_format.parse_all(f.read())]
    except FileNotFoundError:
        return []


@pytest.mark.parametrize("placement", PLACEMENTS)
async def test_a_container_and_an_exec_share_their_place(placement, tmp_path):
    runtime, sandbox, handle, env = await started(placement, tmp_path)
    try:
        async def first_lines() -> list[str] | None:
            lines = logged(sandbox)
            return lines if len(lines) >= 2 else None

        lines = await eventually(first_lines, what="the container's first lines")
        uid, cwd = ("4321", "/") if placement.isolated else (str(os.geteuid()), sandbox.root_dir("main"))
        assert lines[:2] == [uid, cwd]
        process = await runtime.exec(sandbox, CONTAINER, env, ["sh", "-c", "id -u; pwd; cat work/made"], stdin=False,
                                     tty=False)
        out, _ = await process.proc.communicate()
        assert out.decode().split() == [uid, cwd, "made"]
        with pytest.raises(ContainerError, match="failed to exec in container: exec: 'no-such-command'"):
            await runtime.exec(sandbox, CONTAINER, env, ["no-such-command"], stdin=False, tty=False)
    finally:
        handle.signal(9)
        await handle.wait()


@pytest.mark.parametrize("placement", PLACEMENTS)
async def test_a_command_that_cannot_start_is_a_run_container_error(placement, tmp_path):
    with pytest.raises(ContainerError) as err:
        await started(placement, tmp_path, {"name": "main", "command": ["no-such-command"]})
    assert err.value.reason == "RunContainerError"
    assert "failed to start 'no-such-command': exec: 'no-such-command': No such file or directory" in err.value.message
