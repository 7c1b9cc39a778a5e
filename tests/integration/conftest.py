"""Fixtures for the integration tests: clusters of real masters (and node agents), started and stopped for a test or
for a module, and an admin client on them. Helpers that are not fixtures are in kube.py and cluster.py."""
from __future__ import annotations

from typing import AsyncIterator, Iterator

import pytest

from api.client import ApiClient
from tests.integration.cluster import ACCOUNT_CONTROLLERS, FAST_CONTROL_PLANE, Cluster


@pytest.fixture
async def cluster(request, tmp_path):
    """Three masters for one test, with the module's MASTER_FLAGS if it has some."""
    c = Cluster(str(tmp_path / "cluster"), 3, getattr(request.module, "MASTER_FLAGS", ()))
    try:
        yield c
    finally:
        await c.close_clients()
        c.stop()


def _module_name(request: pytest.FixtureRequest) -> str:
    return request.module.__name__.rpartition(".")[2].removeprefix("test_")


@pytest.fixture(scope="module")
def cp(request, tmp_path_factory) -> Iterator[Cluster]:
    """One master with the control plane, shared by a module's tests: FAST_CONTROL_PLANE's flags, or the module's
    CONTROL_PLANE (PATIENT_CONTROL_PLANE where the test makes Nodes by hand)."""
    flags = getattr(request.module, "CONTROL_PLANE", FAST_CONTROL_PLANE)
    c = Cluster(str(tmp_path_factory.mktemp(_module_name(request))), 1, flags)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def node_cluster(request, tmp_path_factory) -> Iterator[Cluster]:
    """One master with only the controllers pods' service accounts need (or the module's CONTROL_PLANE), and the node
    agents the module's NODES asks for (Cluster's nodes=, runtime=, node_flags=), shared by its tests."""
    flags = getattr(request.module, "CONTROL_PLANE", ACCOUNT_CONTROLLERS)
    c = Cluster(str(tmp_path_factory.mktemp(_module_name(request))), 1, flags, **request.module.NODES)
    yield c
    c.stop()


@pytest.fixture
async def node_api(node_cluster) -> AsyncIterator[ApiClient]:
    """An admin client on node_cluster."""
    client = node_cluster.api()
    yield client
    await client.close()
