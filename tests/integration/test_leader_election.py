"""Every master runs a controller-manager and a scheduler; Leases in kube-system pick the one that acts.
Killing, stopping or cutting off the holder's master hands the Lease to another master's process."""
import os
import signal
import subprocess
import sys

import pytest

from api.client import NotFound
from tests.integration.cluster import FAST_CONTROL_PLANE, Cluster, eventually

LEASES = ("kube-controller-manager", "kube-scheduler")


@pytest.fixture
def cp_cluster(tmp_path):
    c = Cluster(str(tmp_path / "cluster"), 3, (*FAST_CONTROL_PLANE, "--enable-failpoints"))  # partitions
    yield c
    c.stop()


async def holders(api):
    out = {}
    for name in LEASES:
        spec = (await api.get("leases", name, "kube-system"))["spec"]
        out[name] = (spec.get("holderIdentity") or "", spec.get("leaseTransitions", 0))
    return out


def master_of(holder: str) -> str:
    return holder.rpartition("_")[0]


async def test_one_holder_per_lease_and_a_killed_holder_is_replaced(cp_cluster):
    async with cp_cluster.api() as api:
        first = await eventually(lambda: _all_held(api), timeout=30, what="both leases held")
        for name, (holder, _) in first.items():
            assert master_of(holder) in cp_cluster.names, holder
            lease = await api.get("leases", name, "kube-system")
            assert lease["spec"]["leaseDurationSeconds"] == 3 and lease["spec"]["renewTime"]
        shown = subprocess.run([sys.executable, "-m", "raftkube", "status", "--state-dir", cp_cluster.state_dir],
                               capture_output=True, text=True, timeout=30).stdout
        assert f"controller-manager: {first['kube-controller-manager'][0]}" in shown, shown
        victim = master_of(first["kube-controller-manager"][0])
        cp_cluster.kill(victim)  # SIGKILL: its control-plane child dies with it, nothing is released

        async def taken_over():
            now = await _all_held(api)
            return now if now and all(master_of(h) != victim for h, _ in now.values()) else None

        after = await eventually(taken_over, timeout=30, what=f"the leases leaving killed {victim}")
        assert after["kube-controller-manager"][1] == first["kube-controller-manager"][1] + 1


async def test_a_cut_off_holder_loses_its_leases_and_a_stopped_one_releases_them(cp_cluster):
    async with cp_cluster.api() as api:
        first = await eventually(lambda: _all_held(api), timeout=30, what="both leases held")
        cut = master_of(first["kube-controller-manager"][0])
        cp_cluster.chaos("partition", cut)
        # The cut-off master cannot renew through its own API (no quorum); another master's process takes over.
        moved = await eventually(lambda: _all_held(api, not_on=cut), timeout=30, what=f"leases leaving cut-off {cut}")
        cp_cluster.chaos("heal", cut)

        holder_master = master_of(moved["kube-scheduler"][0])
        pid = cp_cluster.master(holder_master)["pid"]
        os.kill(pid, signal.SIGTERM)  # a clean stop hands the lease back at once
        os.waitpid(pid, 0)
        released = await api.get("leases", "kube-scheduler", "kube-system")
        assert master_of(released["spec"]["holderIdentity"] or "_") != holder_master


async def _all_held(api, not_on: str | None = None):
    try:
        now = await holders(api)
    except NotFound:  # not created yet
        return None
    if all(h and master_of(h) != not_on for h, _ in now.values()):
        return now
    return None
