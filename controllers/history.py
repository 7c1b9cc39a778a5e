"""ControllerRevisions: the history of a StatefulSet's or DaemonSet's pod template (Kubernetes' controller history).

A revision (apps/v1 ControllerRevision) is named `<owner>-<hash>`, owned by its StatefulSet or DaemonSet, and holds
in `data` the patch that puts its template back: `{"spec": {"template": {..., "$patch": "replace"}}}`, with
`revision` a number that grows with every change. Pods carry the hash in the `controller-revision-hash` label,
so a controller tells an up-to-date pod from an old one without comparing templates.

    revisions = owned ControllerRevisions from the informer cache
    update, collisions = await ensure_update_revision(client, owner, revisions, collisions)
        # the revision of today's template: the newest one if it is equal, an older equal one renumbered
        # (a rollback), or a new one (on a name collision with different data: collisionCount + 1, new hash)
    for old in history_to_delete(revisions, live_names, limit): delete it

Pure functions first; the one function with I/O (`ensure_update_revision`) last.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable

from api.client import ApiClient, Conflict
from controllers.objects import controller_ref, template_hash

Obj = dict[str, Any]
HASH_LABEL = "controller-revision-hash"
MAX_PREFIX = 223  # a revision name is at most 253 characters: prefix, "-", hash


def revision_data(owner: Obj) -> Obj:
    """The patch that restores the owner's template (what Kubernetes stores in ControllerRevision.data)."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: Obj) -> Obj:
    """The pod template a revision holds."""
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def revision_name(owner_name: str, hash_: str) -> str:
    return f"{owner_name[:MAX_PREFIX]}-{hash_}"


def revision_hash(revision: Obj) -> str:
    """A revision's hash: its label, or (for one made by someone else) the tail of its name."""
    labels = revision["metadata"].get("labels") or {}
    return labels.get(HASH_LABEL) or revision["metadata"]["name"].rsplit("-", 1)[-1]


def pod_revision(pod: Obj) -> str:
    """The hash of the revision a pod was made from ("" when it has none)."""
    return (pod["metadata"].get("labels") or {}).get(HASH_LABEL, "")


def new_revision(owner: Obj, number: int, collisions: int = 0) -> Obj:
    """The ControllerRevision of the owner's current template, labelled as the template and with the hash."""
    data = revision_data(owner)
    hash_ = template_hash(data, collisions)
    labels = dict((((owner.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {})
    labels[HASH_LABEL] = hash_
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": revision_name(owner["metadata"]["name"], hash_),
                         "namespace": owner["metadata"]["namespace"], "labels": labels,
                         "ownerReferences": [controller_ref(owner)]},
            "data": data, "revision": number}


def sort_revisions(revisions: Iterable[Obj]) -> list[Obj]:
    """Oldest first: by revision number, then creation time, then name (as history.SortControllerRevisions)."""
    return sorted(revisions, key=lambda r: (r.get("revision", 0), r["metadata"].get("creationTimestamp") or "",
                                            r["metadata"]["name"]))


def next_revision_number(revisions: Iterable[Obj]) -> int:
    return max((r.get("revision", 0) for r in revisions), default=0) + 1


def equal_revisions(revisions: Iterable[Obj], wanted: Obj) -> list[Obj]:
    """Revisions holding the same template as `wanted`, oldest first."""
    return [r for r in sort_revisions(revisions) if r.get("data") == wanted.get("data")]


def history_to_delete(revisions: Iterable[Obj], live: set[str], limit: int) -> list[Obj]:
    """The oldest revisions beyond `limit` that no pod and no status names (`live`: revision names)."""
    dead = [r for r in sort_revisions(revisions) if r["metadata"]["name"] not in live]
    return dead[:max(len(dead) - max(limit, 0), 0)]


def plan_update_revision(revisions: list[Obj], wanted: Obj) -> tuple[str, Obj | None]:
    """What to do for the update revision: ("keep", newest) when the newest holds the template already,
    ("renumber", older equal one) for a rollback to an older template, ("create", None) otherwise."""
    ordered = sort_revisions(revisions)
    equal = equal_revisions(ordered, wanted)
    if equal and ordered[-1]["metadata"]["name"] == equal[-1]["metadata"]["name"]:
        return "keep", ordered[-1]
    if equal:
        return "renumber", equal[-1]
    return "create", None


async def ensure_update_revision(client: ApiClient, owner: Obj, revisions: list[Obj],
                                 collisions: int) -> tuple[Obj, int]:
    """The revision of the owner's template, made or renumbered if need be, and the collision count to store.

    A create that meets a revision of the same name with other data (a hash collision) counts one more collision
    and tries the next hash, as Kubernetes' history.CreateControllerRevision."""
    wanted = new_revision(owner, next_revision_number(revisions), collisions)
    action, found = plan_update_revision(revisions, wanted)
    if action == "keep":
        return found, collisions
    if action == "renumber":
        renumbered = {**copy.deepcopy(found), "revision": wanted["revision"]}
        return await client.update("controllerrevisions", renumbered), collisions
    while True:
        try:
            return await client.create("controllerrevisions", wanted), collisions
        except Conflict:
            existing = await client.get("controllerrevisions", wanted["metadata"]["name"],
                                        owner["metadata"]["namespace"])
            if existing.get("data") == wanted["data"]:
                return existing, collisions
            collisions += 1
            wanted = new_revision(owner, wanted["revision"], collisions)
