"""What the controllers that own pods (or ReplicaSets) do alike, as Kubernetes' controller_utils.go and
client-go's ClaimObjects: claim the objects the owner's selector picks (adopting orphans, releasing what no longer
matches), and create a batch of pods, each one expected (`Expectations`) and told as an Event."""
from __future__ import annotations

import asyncio
from typing import Any

from api.client import ApiClient, ApiClientError, Conflict, NotFound
from controllers.base import Controller
from controllers.informer import key_of
from controllers.objects import Expectations, controller_of, controller_ref, is_deleting, matches

Obj = dict[str, Any]


async def claim(client: ApiClient, *, owner_plural: str, owner: Obj, plural: str, candidates: list[Obj]) -> list[Obj]:
    """The candidates `owner` controls once it adopted the matching orphans and released what it controls but
    no longer selects (client-go's ClaimObjects; the Deployment controller claims ReplicaSets with it)."""
    uid = owner["metadata"]["uid"]
    owned: list[Obj] = []
    can_adopt: bool | None = None
    for obj in candidates:
        ref = controller_of(obj)
        if ref is not None and ref.get("uid") == uid:
            if matches(owner, obj):
                owned.append(obj)
            elif not is_deleting(owner):
                await _set_owner_refs(client, plural, obj, [r for r in obj["metadata"]["ownerReferences"]
                                                            if r.get("uid") != uid])
        elif ref is None and matches(owner, obj) and not is_deleting(owner) and not is_deleting(obj):
            if can_adopt is None:  # as client-go: re-read the owner, a deleted or recreated one adopts nothing
                fresh = await client.get(owner_plural, owner["metadata"]["name"], owner["metadata"]["namespace"])
                can_adopt = fresh["metadata"].get("uid") == uid and not is_deleting(fresh)
            if can_adopt:
                refs = [*(obj["metadata"].get("ownerReferences") or []), controller_ref(owner)]
                adopted = await _set_owner_refs(client, plural, obj, refs)
                if adopted is not None:
                    owned.append(adopted)
    return owned


async def _set_owner_refs(client: ApiClient, plural: str, obj: Obj, refs: list[Obj]) -> Obj | None:
    """Patch ownerReferences, guarded by the resourceVersion; None if the object changed or went away."""
    meta = obj["metadata"]
    try:
        return await client.patch(plural, meta["name"], {"metadata": {
            "ownerReferences": refs or None, "resourceVersion": meta["resourceVersion"]}}, meta["namespace"])
    except (NotFound, Conflict):
        return None


async def create_pods(controller: Controller, expectations: Expectations, key: str, owner: Obj,
                      pods: list[Obj]) -> None:
    """Create the pods at once; each one made is expected under `key` and gets a SuccessfulCreate event. Raises
    the first error once all have answered (after a FailedCreate event when the API refused)."""
    results = await asyncio.gather(*(controller.client.create("pods", p) for p in pods), return_exceptions=True)
    error: BaseException | None = None
    for result in results:
        if isinstance(result, BaseException):
            error = error or result
            continue
        expectations.expect_create(key, key_of(result))
        controller.record(owner, "Normal", "SuccessfulCreate", f"Created pod: {result['metadata']['name']}")
    if error is not None:
        if isinstance(error, ApiClientError):
            controller.record(owner, "Warning", "FailedCreate", f"Error creating: {error}")
        raise error
