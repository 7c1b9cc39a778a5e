"""Service addresses from the store-backed ranges: every NodePort Service gets free node ports in 30000-32767 as
it gets its ClusterIP, in the same transaction; an explicit port already taken is a 422; deleting gives it back."""
import pytest

from api.client import ApiClientError
from tests.integration.cluster import Cluster


def service(name, *node_ports, type_="NodePort"):
    ports = [{"name": f"p{i}", "port": 80 + i, **({"nodePort": np} if np else {})} for i, np in enumerate(node_ports)]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": type_, "ports": ports, "selector": {"app": name}}}


async def test_node_ports_are_allocated_checked_and_released(tmp_path):
    cluster = Cluster(str(tmp_path / "c"), 1)
    try:
        async with cluster.api() as api:
            made = [await api.create("services", service(f"s{i}", None, None)) for i in range(4)]
            ports = [p["nodePort"] for s in made for p in s["spec"]["ports"]]
            assert len(set(ports)) == 8 and all(30000 <= p <= 32767 for p in ports)
            plain = await api.create("services", service("plain", None, type_="ClusterIP"))
            assert "nodePort" not in plain["spec"]["ports"][0]

            fixed = await api.create("services", service("fixed", 31234))
            assert fixed["spec"]["ports"][0]["nodePort"] == 31234
            for bad in (service("again", 31234), service("outside", 80)):
                with pytest.raises(ApiClientError) as refused:
                    await api.create("services", bad)
                assert refused.value.status == 422, refused.value.body
            await api.delete("services", "fixed", "default")
            again = await api.create("services", service("again", 31234))  # the port was given back
            assert again["spec"]["ports"][0]["nodePort"] == 31234
    finally:
        cluster.stop()
