"""The informer's cache and indexes, and the events a relist turns into (no server needed: the watch is fed)."""
from typing import Any

from controllers.informer import Informer, key_of, split_key


class FedClient:
    """Stands in for api.client's watch stream: yields the events it was given, then stops."""

    def __init__(self, events: list[tuple[str, Any]]) -> None:
        self.events = events

    async def watch(self, kind, namespace=None, **_):
        for e in self.events:
            yield e


def pod(name, rv, node=None, owner=None, ns="default", labels=None):
    meta = {"name": name, "namespace": ns, "resourceVersion": str(rv), "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "ReplicaSet", "name": "rs"}]
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}}


async def test_relist_turns_the_difference_into_adds_updates_and_deletes():
    events = [("RELIST", [pod("a", 1, "n1"), pod("b", 2)]),
              ("MODIFIED", pod("b", 3, "n2", owner="u1")),
              ("RELIST", [pod("b", 3, "n2", owner="u1"), pod("c", 5, "n1")])]  # a deleted while disconnected
    inf = Informer(FedClient(events), "pods")  # type: ignore[arg-type]
    seen = []
    inf.add_handler(lambda ev, old, new: seen.append((ev, (new or old)["metadata"]["name"])))
    await inf._watch()
    assert seen == [("add", "a"), ("add", "b"), ("update", "b"), ("delete", "a"), ("add", "c")]
    assert inf.synced.is_set()
    assert sorted(o["metadata"]["name"] for o in inf.by_index("node", "n1")) == ["c"]
    assert [o["metadata"]["name"] for o in inf.by_index("owner", "u1")] == ["b"]
    assert inf.by_index("node", "n2")[0]["metadata"]["resourceVersion"] == "3"


async def test_indexes_follow_updates_and_deletes():
    events = [("RELIST", [pod("a", 1, "n1", labels={"app": "web"})]),
              ("MODIFIED", pod("a", 2, "n2", labels={"app": "db"})),
              ("DELETED", pod("a", 3, "n2"))]
    inf = Informer(FedClient(events[:2]), "pods")  # type: ignore[arg-type]
    await inf._watch()
    assert inf.by_index("node", "n1") == [] and len(inf.by_index("label", "app=db")) == 1
    inf.client = FedClient(events[2:])  # type: ignore[assignment]
    await inf._watch()
    assert inf.cache == {} and inf.by_index("node", "n2") == [] and inf.by_index("label", "app=db") == []


def test_keys():
    assert key_of(pod("a", 1)) == "default/a" and split_key("default/a") == ("default", "a")
    assert key_of({"metadata": {"name": "n1"}}) == "n1" and split_key("n1") == (None, "n1")
