"""The pytest plugin (entry point `pytest11`, installed with raftkube): fixtures that start a real cluster per test.

    def test_a(raftkube_cluster):                       # 3 masters, failpoints on
        raftkube_cluster.kill(raftkube_cluster.leader())

    @pytest.mark.raftkube(masters=5, nodes=2)           # any of Cluster's arguments
    def test_b(raftkube_cluster): ...

    def test_c(raftkube_cluster_factory):                # as many clusters as the test wants
        small, big = raftkube_cluster_factory(masters=1), raftkube_cluster_factory(masters=5)

Every cluster a test started is stopped when it ends, passed or failed (its logs are kept, and their place
printed, when it failed).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from raftkube.testing.cluster import Cluster

MARKER = "raftkube"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(**options): the raftkube_cluster fixture's Cluster options "
                                       "(masters=, nodes=, runtime=, failpoints=, control_plane=, ...)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Remember whether the test failed, so its clusters keep their logs."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def raftkube_cluster_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                             ) -> Iterator[Callable[..., Cluster]]:
    """Start clusters with any options; all are stopped at the end of the test."""
    started: list[Cluster] = []

    def make(**options: Any) -> Cluster:
        options.setdefault("state_dir", str(tmp_path_factory.mktemp("raftkube")))
        cluster = Cluster(**options)
        cluster.__enter__()
        started.append(cluster)
        return cluster

    yield make
    failed = request.node.stash.get(_FAILED, True)
    for cluster in reversed(started):
        cluster.__exit__(AssertionError if failed else None, None, None)


@pytest.fixture
def raftkube_cluster(request: pytest.FixtureRequest, raftkube_cluster_factory: Callable[..., Cluster]) -> Cluster:
    """A 3-master cluster (or as `@pytest.mark.raftkube(...)` asks) for this test."""
    marker = request.node.get_closest_marker(MARKER)
    return raftkube_cluster_factory(**(marker.kwargs if marker else {}))
