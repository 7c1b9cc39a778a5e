"""`raftkube demo failover|quorum` on a live cluster: the timeline says what a class should see."""
import subprocess
import sys

from tests.integration.cluster import eventually


def demo(cluster, scenario):
    out = subprocess.run([sys.executable, "-m", "raftkube", "demo", scenario, "--state-dir", cluster.state_dir],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


async def test_the_failover_demo_tells_the_story(cluster):
    story = demo(cluster, "failover")
    assert "kill -9 m" in story and "elected leader" in story and "writes succeed again" in story
    assert "is back, following the leader" in story
    await _every_master_takes_a_write(cluster)


async def test_the_quorum_demo_shows_fast_failure_and_recovery(cluster):
    story = demo(cluster, "quorum")
    assert "no majority" in story and "a write failed after" in story and "no quorum" in story
    assert "a serializable (local) read still answers" in story and "writes succeed again" in story
    await cluster.close_clients()
    await _every_master_takes_a_write(cluster)


async def _every_master_takes_a_write(cluster):
    """After the demo the cluster is whole again: a write through each master (once it is back up) is read back
    through another."""
    for i, name in enumerate(cluster.names):
        async def written_and_read(name=name, reader=cluster.names[i - 1]) -> bool:
            await cluster.kv(name).put(b"after-demo", name.encode())
            return await cluster.kv(reader).get(b"after-demo") == name.encode()
        await eventually(written_and_read, timeout=30, what=f"a write through {name} read back")
