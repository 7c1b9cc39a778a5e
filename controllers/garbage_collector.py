"""The garbage collector: ownerReferences cascade (Kubernetes' garbagecollector.go, without its graph).

An object whose owners are all gone goes too. "Gone" is by uid: an owner deleted and made again under the same
name is a different owner. The informers of every kind are the graph: the "owner" index finds an object's
dependents, `uids` finds an owner by uid; an owner missing from every cache is looked up once through the API
(the caches may lag), and a uid known to be gone stays gone.

Two kinds of work item, each a key "VERB|plural|namespace/name":
  attempt  a dependent: keep it while one owner is solid (dropping the references to owners that are gone or
           deleting in the foreground); delete it once none is (Foreground if it waits on a foreground owner
           and has dependents of its own, else the policy of its own finalizers, else Background);
  owner    an owner marked by a DELETE with propagationPolicy (api/deletion.py):
           `orphan`: remove the ownerReferences to it from every dependent, then the finalizer;
           `foregroundDeletion`: delete its dependents, and remove the finalizer once none that
           blocks owner deletion (blockOwnerDeletion) is left.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from api.client import ApiClient, Conflict, NotFound, resource
from api.registry import RESOURCES
from controllers.base import Context, Controller
from controllers.informer import key_of
from controllers.objects import is_deleting

Obj = dict[str, Any]

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
SOLID, DANGLING, WAITING = "solid", "dangling", "waiting"
WATCHED = [r.plural for r in RESOURCES if r.stored and r.plural != "events"]  # every kind that owns or is owned
MAX_GONE = 50_000  # uids remembered as gone (uids never come back; the bound only saves memory)


# -- pure decisions ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    action: str  # "keep", "unlink" (remove references to `uids`) or "delete" (with `policy`)
    uids: tuple[str, ...] = ()
    policy: str = "Background"


def owner_state(owner: Obj | None, uid: str) -> str:
    """solid (there, and not deleting its dependents first), waiting (foreground deletion) or dangling (gone, or
    a different object under that name)."""
    if owner is None or owner["metadata"].get("uid") != uid:
        return DANGLING
    if is_deleting(owner) and FOREGROUND in (owner["metadata"].get("finalizers") or []):
        return WAITING
    return SOLID


def decide(obj: Obj, states: dict[str, str], *, has_dependents: bool) -> Decision:
    """What to do with a dependent given its owners' states by uid (attemptToDeleteItem)."""
    refs = obj["metadata"].get("ownerReferences") or []
    if not refs or is_deleting(obj):
        return Decision("keep")
    solid = [r["uid"] for r in refs if states.get(r["uid"]) == SOLID]
    waiting = [r["uid"] for r in refs if states.get(r["uid"]) == WAITING]
    dangling = [r["uid"] for r in refs if states.get(r["uid"]) == DANGLING]
    if solid:
        gone = tuple(dangling + waiting)
        return Decision("unlink", gone) if gone else Decision("keep")
    if waiting and has_dependents:
        return Decision("delete", policy="Foreground")
    finalizers = obj["metadata"].get("finalizers") or []
    policy = "Orphan" if ORPHAN in finalizers else "Foreground" if FOREGROUND in finalizers else "Background"
    return Decision("delete", policy=policy)


def blocking(dependents: list[Obj], owner_uid: str) -> list[Obj]:
    """The dependents whose reference to the owner has blockOwnerDeletion: a foreground deletion waits for them."""
    return [d for d in dependents if any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion")
                                         for r in d["metadata"].get("ownerReferences") or [])]


def without_owners(obj: Obj, uids: set[str]) -> list[Obj]:
    return [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") not in uids]


# -- I/O helpers other controllers may use -------------------------------------------------------------------

async def delete_with(client: ApiClient, plural: str, obj: Obj, policy: str = "Background") -> bool:
    """DELETE with a propagationPolicy, only if the object is still the one we saw (uid precondition).
    False if it was gone or replaced already."""
    meta = obj["metadata"]
    try:
        await client.delete(plural, meta["name"], meta.get("namespace"), uid=meta["uid"], propagation_policy=policy)
    except (NotFound, Conflict):
        return False
    return True


# -- the controller ------------------------------------------------------------------------------------------

class GarbageCollector(Controller):
    name = "garbagecollector"
    component = "garbage-collector-controller"
    service_account = "generic-garbage-collector"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.informers = {plural: ctx.informers[plural] for plural in WATCHED}
        self.uids: dict[str, tuple[str, str]] = {}  # uid -> (plural, key) of every cached object
        self.gone: OrderedDict[str, None] = OrderedDict()  # uids known to be deleted
        for plural, informer in self.informers.items():
            informer.add_handler(lambda event, old, new, plural=plural: self.on_event(plural, event, old, new))

    def on_event(self, plural: str, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        uid, key = obj["metadata"].get("uid", ""), key_of(obj)
        if event == "delete":
            if self.uids.get(uid) == (plural, key):
                del self.uids[uid]
            self.mark_gone(uid)
            for dep_plural, dep in self.dependents(uid):  # orphans now, unless another owner holds them
                self.queue.add(f"attempt|{dep_plural}|{key_of(dep)}")
            for ref in obj["metadata"].get("ownerReferences") or []:  # an owner may be waiting for this one
                if ref.get("uid") in self.uids:
                    owner_plural, owner_key = self.uids[ref["uid"]]
                    self.queue.add(f"owner|{owner_plural}|{owner_key}")
            return
        self.uids[uid] = (plural, key)
        refs = obj["metadata"].get("ownerReferences")
        if refs and (old is None or refs != old["metadata"].get("ownerReferences")):
            self.queue.add(f"attempt|{plural}|{key}")
        finalizers = obj["metadata"].get("finalizers") or []
        if is_deleting(obj) and (FOREGROUND in finalizers or ORPHAN in finalizers):
            self.queue.add(f"owner|{plural}|{key}")

    def mark_gone(self, uid: str) -> None:
        self.gone[uid] = None
        if len(self.gone) > MAX_GONE:
            self.gone.popitem(last=False)

    def dependents(self, uid: str) -> list[tuple[str, Obj]]:
        return [(plural, obj) for plural, informer in self.informers.items() for obj in informer.by_index("owner", uid)]

    async def sync(self, item: str) -> None:
        verb, plural, key = item.split("|", 2)
        cached = self.informers[plural].get(key)
        if cached is None:
            return
        obj = copy.deepcopy(cached)
        if verb == "attempt":
            await self.attempt_to_delete(plural, obj)
        else:
            await self.process_deleting_owner(plural, obj)

    # -- dependents ---------------------------------------------------------------------------------------------

    async def resolve(self, obj: Obj, ref: Obj) -> str:
        """The state of one owner: from the caches, else (a lagging cache, or a kind we cannot see) the API."""
        uid = ref.get("uid", "")
        if uid in self.uids:
            plural, key = self.uids[uid]
            return owner_state(self.informers[plural].get(key), uid)
        if uid in self.gone:
            return DANGLING
        try:
            res = resource(ref.get("kind", ""))
        except ValueError:
            return SOLID  # a kind this API does not serve: never collect on its account
        namespace = obj["metadata"].get("namespace") if res.namespaced else None
        try:
            owner = await self.client.get(res.plural, ref.get("name", ""), namespace)
        except NotFound:
            owner = None
        state = owner_state(owner, uid)
        if state == DANGLING:
            self.mark_gone(uid)
        return state

    async def attempt_to_delete(self, plural: str, obj: Obj) -> None:
        refs = obj["metadata"].get("ownerReferences") or []
        if not refs or is_deleting(obj):
            return
        states = {ref.get("uid", ""): await self.resolve(obj, ref) for ref in refs}
        decision = decide(obj, states, has_dependents=bool(self.dependents(obj["metadata"]["uid"])))
        meta = obj["metadata"]
        if decision.action == "unlink":
            await self.set_owner_refs(plural, obj, without_owners(obj, set(decision.uids)))
        elif decision.action == "delete":
            owners = ", ".join(f"{r.get('kind')}/{r.get('name')}" for r in refs)
            if await delete_with(self.client, plural, obj, decision.policy):
                self.log.info("deleted %s %s/%s (%s), its owners %s being gone", plural, meta.get("namespace", ""),
                              meta["name"], decision.policy, owners)

    async def set_owner_refs(self, plural: str, obj: Obj, refs: list[Obj]) -> None:
        """Patch ownerReferences, guarded by resourceVersion (a 409 retries the item with a fresh cache)."""
        meta = obj["metadata"]
        try:
            await self.client.patch(plural, meta["name"], {"metadata": {
                "ownerReferences": refs or None, "resourceVersion": meta["resourceVersion"]}}, meta.get("namespace"))
        except NotFound:
            pass

    # -- owners deleting in the foreground or orphaning --------------------------------------------------------

    async def process_deleting_owner(self, plural: str, owner: Obj) -> None:
        meta = owner["metadata"]
        finalizers = meta.get("finalizers") or []
        if not is_deleting(owner):
            return
        uid = meta["uid"]
        dependents = self.dependents(uid)
        if ORPHAN in finalizers:
            for dep_plural, dep in dependents:
                await self.set_owner_refs(dep_plural, dep, without_owners(dep, {uid}))
            await self.remove_finalizer(plural, owner, ORPHAN)
            self.log.info("orphaned %d dependents of %s %s", len(dependents), plural, key_of(owner))
        elif FOREGROUND in finalizers:
            for dep_plural, dep in dependents:
                self.queue.add(f"attempt|{dep_plural}|{key_of(dep)}")
            if not blocking([d for _, d in dependents], uid):
                await self.remove_finalizer(plural, owner, FOREGROUND)

    async def remove_finalizer(self, plural: str, obj: Obj, finalizer: str) -> None:
        meta = obj["metadata"]
        rest = [f for f in meta.get("finalizers") or [] if f != finalizer]
        try:
            await self.client.patch(plural, meta["name"], {"metadata": {
                "finalizers": rest or None, "resourceVersion": meta["resourceVersion"]}}, meta.get("namespace"))
        except NotFound:
            pass

