"""The Deployment controller: a ReplicaSet per pod template, rolled from old to new (Kubernetes' deployment
controller; the arithmetic is in controllers/rollout.py).

One sync of a Deployment:
  1. claim its ReplicaSets (adopt matching orphans, release what no longer matches);
  2. paused, or spec.replicas changed mid-rollout: only resize the ReplicaSets (proportionally) and write status;
  3. otherwise one step of the strategy: RollingUpdate scales the new ReplicaSet `<name>-<pod-template-hash>` up
     within maxSurge, or old ones down within maxUnavailable; Recreate scales every old one to 0, waits for their
     pods to be gone, then creates the new one at full size;
  4. once complete, delete old empty ReplicaSets beyond revisionHistoryLimit; write status and the Progressing
     and Available conditions, and look again when the progress deadline would pass.

The ReplicaSet whose template equals the Deployment's (ignoring pod-template-hash) is the new one, so `kubectl
rollout undo`, which copies an old ReplicaSet's template into the Deployment, brings that ReplicaSet back with the
next revision number. Every write carries the cached resourceVersion: a decision made on a stale cache fails
with a Conflict and is made again.
"""
from __future__ import annotations

import copy
import time
from typing import Any

from api.client import Conflict, NotFound
from controllers import rollout
from controllers.base import Context, Controller
from controllers.informer import key_of
from controllers.objects import controller_of, controller_ref, is_deleting, is_terminal, matches, owned_by, \
    template_hash
from controllers.pod_control import claim
from controllers.rollout import replicas

Obj = dict[str, Any]


class DeploymentController(Controller):
    name = "deployment"
    component = "deployment-controller"
    service_account = "deployment-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.deployments = ctx.informers["deployments"]
        self.rss = ctx.informers["replicasets"]
        self.pods = ctx.informers["pods"]
        self.deployments.add_handler(lambda event, old, new: self.enqueue(new or old))  # type: ignore[arg-type]
        self.rss.add_handler(self.on_replicaset)
        self.pods.add_handler(self.on_pod)

    # -- handlers --------------------------------------------------------------------------------------------

    def deployment_key(self, obj: Obj) -> str | None:
        ref = controller_of(obj)
        if ref is None or ref.get("kind") != "Deployment":
            return None
        return f"{obj['metadata']['namespace']}/{ref['name']}"

    def on_replicaset(self, event: str, old: Obj | None, new: Obj | None) -> None:
        keys = {self.deployment_key(rs) for rs in (old, new) if rs is not None} - {None}
        if new is not None and controller_of(new) is None:
            keys |= {key_of(d) for d in self.deployments.list(new["metadata"]["namespace"]) if matches(d, new)}
        for key in keys:
            self.queue.add(key)  # type: ignore[arg-type]

    def on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """A Recreate rollout waits for the old pods to be gone: wake it when one goes or finishes."""
        pod = new or old
        assert pod is not None
        if not (new is None or (is_terminal(new) and not (old and is_terminal(old)))):
            return
        ref = controller_of(pod)
        rs = self.rss.get(f"{pod['metadata']['namespace']}/{ref['name']}") if ref and ref["kind"] == "ReplicaSet" \
            else None
        key = self.deployment_key(rs) if rs is not None else None
        d = self.deployments.get(key) if key else None
        if d is not None and not rollout.is_rolling(d):
            self.queue.add(key)  # type: ignore[arg-type]

    # -- sync ------------------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.deployments.get(key)
        if cached is None:
            return
        d = copy.deepcopy(cached)
        selector = d["spec"].get("selector") or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            self.log.warning("deployment %s has an empty selector, which would select every pod; not acting", key)
            return
        rss = await claim(self.client, owner_plural="deployments", owner=d, plural="replicasets",
                          candidates=[copy.deepcopy(rs) for rs in self.rss.list(d["metadata"]["namespace"])])
        if is_deleting(d):
            await self.write_status(d, rollout.deployment_status(d, rss, self.split(d, rss)[0]))
            return
        d = await self.check_paused_conditions(d)
        if d["spec"].get("paused") or rollout.is_scaling_event(d, rss):
            await self.resize(d, rss)
        elif rollout.is_rolling(d):
            await self.rollout_rolling(d, rss)
        else:
            await self.rollout_recreate(d, rss)

    def split(self, d: Obj, rss: list[Obj]) -> tuple[Obj | None, list[Obj]]:
        """(the new ReplicaSet: the oldest whose template is the Deployment's, the others)."""
        template = d["spec"]["template"]
        new = next((rs for rs in rollout.by_age(rss) if rollout.same_template(rs["spec"]["template"], template)), None)
        return new, [rs for rs in rss if rs is not new]

    async def revisions(self, d: Obj, rss: list[Obj], create: bool) -> tuple[Obj, Obj | None, list[Obj]]:
        """getAllReplicaSetsAndSyncRevision: (the Deployment, the new ReplicaSet, old ones); the new one gets the
        next revision, and is created if asked and missing. Conditions written here keep the old observedGeneration:
        the counts beside them are the old ones, and `kubectl rollout status` must not take them for the new."""
        new_rs, old = self.split(d, rss)
        new_revision = max((rollout.revision(rs) for rs in old), default=0) + 1
        if new_rs is not None:
            if rollout.sync_new_rs_annotations(d, new_rs, new_revision) or \
                    int(new_rs["spec"].get("minReadySeconds") or 0) != int(d["spec"].get("minReadySeconds") or 0):
                new_rs["spec"]["minReadySeconds"] = int(d["spec"].get("minReadySeconds") or 0)
                new_rs = await self.client.update("replicasets", new_rs)
            d = await self.set_revision(d, rollout.revision(new_rs))
            if rollout.has_deadline(d) and rollout.progressing(d.get("status") or {}) is None:
                status = copy.deepcopy(d.get("status") or {})
                rollout.set_deployment_condition(status, rollout.new_condition(
                    "Progressing", "True", "FoundNewReplicaSet", f'Found new replica set "{new_rs["metadata"]["name"]}"'))
                d = await self.write_status(d, status)
            return d, new_rs, old
        if not create:
            return d, None, old
        collisions = int((d.get("status") or {}).get("collisionCount") or 0)
        wanted = rollout.new_replica_set(d, template_hash(rollout.without_hash(d["spec"]["template"]), collisions), new_revision,
                                         rollout.new_rs_replicas(d, old, None))
        wanted["metadata"]["ownerReferences"] = [controller_ref(d)]
        try:
            new_rs = await self.client.create("replicasets", wanted)
            created = True
        except Conflict:  # AlreadyExists: ours from a sync the cache has not caught up with, or a hash collision
            existing = await self.client.get("replicasets", wanted["metadata"]["name"], d["metadata"]["namespace"])
            if not (owned_by(existing, d) and rollout.same_template(existing["spec"]["template"],
                                                                     d["spec"]["template"])):
                status = copy.deepcopy(d.get("status") or {})
                status["collisionCount"] = collisions + 1
                await self.write_status(d, status)
                raise
            new_rs, created = existing, False
        if created and replicas(new_rs) > 0:
            self.record(d, "Normal", "ScalingReplicaSet",
                        f"Scaled up replica set {new_rs['metadata']['name']} to {replicas(new_rs)}")
        d = await self.set_revision(d, new_revision)
        if rollout.has_deadline(d) and created:
            status = copy.deepcopy(d.get("status") or {})
            rollout.set_deployment_condition(status, rollout.new_condition(
                "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{new_rs["metadata"]["name"]}"'))
            d = await self.write_status(d, status)
        return d, new_rs, old

    async def rollout_rolling(self, d: Obj, rss: list[Obj]) -> None:
        d, new_rs, old = await self.revisions(d, rss, create=True)
        assert new_rs is not None
        if replicas(new_rs) != replicas(d):  # reconcileNewReplicaSet
            target = replicas(d) if replicas(new_rs) > replicas(d) else rollout.new_rs_replicas(d, old + [new_rs], new_rs)
            scaled, new_rs = await self.scale(d, new_rs, target)
            if scaled:
                await self.sync_rollout_status(d, old + [new_rs], new_rs)
                return
        downs = rollout.old_rs_scale_downs(d, old, new_rs)
        if downs:
            old = [(await self.scale(d, rs, downs[rs["metadata"]["name"]]))[1] if rs["metadata"]["name"] in downs
                   else rs for rs in old]  # oldest first: the order of old_rs_scale_downs
            await self.sync_rollout_status(d, old + [new_rs], new_rs)
            return
        if rollout.is_complete(d, d.get("status") or {}):
            await self.cleanup(d, old)
        await self.sync_rollout_status(d, old + [new_rs], new_rs)

    async def rollout_recreate(self, d: Obj, rss: list[Obj]) -> None:
        d, new_rs, old = await self.revisions(d, rss, create=False)
        scaled_down = False
        for i, rs in enumerate(old):
            if replicas(rs) > 0:
                scaled, old[i] = await self.scale(d, rs, 0)
                scaled_down |= scaled
        all_rss = old + ([new_rs] if new_rs else [])
        if scaled_down or self.old_pods_running(old):
            await self.sync_rollout_status(d, all_rss, new_rs)
            return
        if new_rs is None:
            d, new_rs, old = await self.revisions(d, rss, create=True)
            assert new_rs is not None
        scaled, new_rs = await self.scale(d, new_rs, replicas(d))
        if not scaled and rollout.is_complete(d, d.get("status") or {}):
            await self.cleanup(d, old)
        await self.sync_rollout_status(d, old + [new_rs], new_rs)

    def old_pods_running(self, old: list[Obj]) -> bool:
        """Recreate starts new pods only once no pod of an old ReplicaSet is left that is not finished."""
        if rollout.total(old, "replicas") > 0:
            return True
        return any(not is_terminal(p) for rs in old for p in self.pods.by_index("owner", rs["metadata"]["uid"]))

    async def resize(self, d: Obj, rss: list[Obj]) -> None:
        """Kubernetes' sync(): a paused Deployment or a change of replicas: resize, no rollout step."""
        d, new_rs, old = await self.revisions(d, rss, create=False)
        sizes = rollout.proportional_scale(d, new_rs, old)

        async def resized(rs: Obj) -> Obj:
            name = rs["metadata"]["name"]
            return (await self.scale(d, rs, sizes[name]))[1] if name in sizes else rs
        new_rs = await resized(new_rs) if new_rs is not None else None
        old = [await resized(rs) for rs in old]
        if d["spec"].get("paused"):
            await self.cleanup(d, old)
        await self.write_status(d, rollout.deployment_status(d, old + ([new_rs] if new_rs else []), new_rs))

    async def check_paused_conditions(self, d: Obj) -> Obj:
        """Progressing=Unknown DeploymentPaused while paused, DeploymentResumed once resumed (unless timed out)."""
        if not rollout.has_deadline(d):
            return d
        cond = rollout.progressing(d.get("status") or {})
        if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
            return d
        paused_before = cond is not None and cond.get("reason") == "DeploymentPaused"
        paused = bool(d["spec"].get("paused"))
        if paused == paused_before:
            return d
        status = copy.deepcopy(d.get("status") or {})
        reason, message = ("DeploymentPaused", "Deployment is paused") if paused else \
            ("DeploymentResumed", "Deployment is resumed")
        rollout.set_deployment_condition(status, rollout.new_condition("Progressing", "Unknown", reason, message))
        return await self.write_status(d, status)

    # -- writes ----------------------------------------------------------------------------------------------

    async def scale(self, d: Obj, rs: Obj, count: int) -> tuple[bool, Obj]:
        """Resize a ReplicaSet and bring its replicas annotations up to date; a ScalingReplicaSet event says so.
        (resized?, the ReplicaSet as written)."""
        before = replicas(rs)
        rs = copy.deepcopy(rs)
        rs["spec"]["replicas"] = count
        if not rollout.with_replicas_annotations(d, rs) and before == count:
            return False, rs
        rs = await self.client.update("replicasets", rs)
        if before == count:  # only the annotations were behind (they tell a later sync what size it was given)
            return False, rs
        direction = "up" if count > before else "down"
        self.record(d, "Normal", "ScalingReplicaSet",
                    f"Scaled {direction} replica set {rs['metadata']['name']} to {count} from {before}")
        return True, rs

    async def set_revision(self, d: Obj, rev: int) -> Obj:
        annotations = d["metadata"].setdefault("annotations", {})
        if annotations.get(rollout.REVISION) == str(rev):
            return d
        annotations[rollout.REVISION] = str(rev)
        return await self.client.update("deployments", d)

    async def write_status(self, d: Obj, status: Obj) -> Obj:
        if status == (d.get("status") or {}):
            return d
        d = {**d, "status": status}
        return await self.client.update_status("deployments", d)

    async def sync_rollout_status(self, d: Obj, all_rss: list[Obj], new_rs: Obj | None) -> None:
        at = time.time()
        status = rollout.rollout_status(d, all_rss, new_rs, at)
        if status == (d.get("status") or {}):
            wait = rollout.seconds_until_deadline(d, status, at)
            if wait is not None:
                self.queue.add_after(key_of(d), wait)
            return
        await self.write_status(d, status)

    async def cleanup(self, d: Obj, old: list[Obj]) -> None:
        """Old ReplicaSets beyond revisionHistoryLimit go (empty ones only)."""
        for rs in rollout.cleanup_candidates(d, old):
            try:
                await self.client.delete("replicasets", rs["metadata"]["name"], rs["metadata"]["namespace"],
                                         uid=rs["metadata"]["uid"])
            except (NotFound, Conflict):
                pass
