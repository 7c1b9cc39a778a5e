"""Fault-injection tests of your own clients and controllers against a real raftkube cluster.

    from raftkube.testing import Cluster, check_linearizable

    def test_my_client_survives_a_leader_kill():
        with Cluster(masters=3) as cluster:
            history = cluster.history()
            ...                                   # your client's operations, each inside history.op(...)
            cluster.kill(cluster.leader())
            ...
            result = check_linearizable(history)
            assert result.ok, result               # on failure: the smallest failing sub-history, drawn

With pytest, the `raftkube_cluster` fixture (3 masters, function scope) and `raftkube_cluster_factory` do the same
(raftkube/testing/pytest_plugin.py, installed with the package). The names below are the stable API.
"""
from raftkube.testing.cluster import AsyncCluster, Cluster, ClusterError
from raftkube.testing.history import (FAILED, OK, UNKNOWN, History, LinearizabilityResult, Recording, WatchResult,
                                      check_linearizable, check_watch)
from raftkube.testing.kv import KV, AsyncKV

__all__ = ["AsyncCluster", "AsyncKV", "Cluster", "ClusterError", "FAILED", "History", "KV", "LinearizabilityResult",
           "OK", "Recording", "UNKNOWN", "WatchResult", "check_linearizable", "check_watch"]
