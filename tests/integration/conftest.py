import pytest

from tests.integration.cluster import Cluster


@pytest.fixture
async def cluster(tmp_path):
    c = Cluster(str(tmp_path / "cluster"), 3)
    try:
        yield c
    finally:
        await c.close_clients()
        c.stop()
