"""The Job controller: run pods until `completions` of them succeed, or give up (Kubernetes' job_controller.go).

One sync of a Job that has not finished:
  1. count its pods (controlled by the Job's uid): active, ready, succeeded, failed; finished pods stay, so
     `kubectl logs` still reads them, and are what the counts come from (never lower than the counts the status
     already has: a finished pod deleted by hand does not undo its completion);
  2. give up when failures exceed backoffLimit (BackoffLimitExceeded; with restartPolicy OnFailure the active
     pods' restarts count too) or the Job has been active longer than activeDeadlineSeconds (DeadlineExceeded):
     delete the active pods, conditions FailureTarget and Failed;
  3. complete when enough pods succeeded (NonIndexed: `completions` pods; Indexed: every index 0..completions-1;
     no completions: one success and nothing left running): conditions SuccessCriteriaMet and Complete,
     completionTime;
  4. otherwise keep min(parallelism, what is left to do) pods active (none while suspended), creating after the
     failure backoff (10 s doubling per failure, at most 6 min) and guarded by `Expectations`;
  5. write status (startTime, active, ready, succeeded, failed, completedIndexes, conditions) when it changed.
A finished Job with ttlSecondsAfterFinished is deleted that long after it finished (its pods go with it).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

from api.client import Conflict, NotFound
from controllers.base import Context, Controller
from controllers.garbage_collector import delete_with
from controllers.informer import key_of
from controllers.objects import (Expectations, controller_of, is_active, is_deleting, is_ready, keys_to_wake, now,
                                 parse_time, pod_from_template)
from controllers.pod_control import create_pods

Obj = dict[str, Any]

INDEX = "batch.kubernetes.io/job-completion-index"
BACKOFF_BASE = 10.0  # seconds before the first pod made after a failure (DefaultJobPodFailureBackOff)
BACKOFF_MAX = 360.0
BURST = 500  # creates per sync


# -- pure decisions ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Counts:
    active: int
    ready: int
    succeeded: int
    failed: int
    restarts: int  # container restarts of the active pods (restartPolicy OnFailure counts them as failures)


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase", "")


def pod_index(pod: Obj) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(INDEX)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def is_indexed(job: Obj) -> bool:
    return job["spec"].get("completionMode") == "Indexed"


def succeeded_indexes(job: Obj, pods: list[Obj]) -> set[int]:
    completions = job["spec"].get("completions") or 0
    return {i for p in pods if phase(p) == "Succeeded" and (i := pod_index(p)) is not None and 0 <= i < completions}


def count(job: Obj, pods: list[Obj]) -> Counts:
    active = [p for p in pods if is_active(p)]
    succeeded = (len(succeeded_indexes(job, pods)) if is_indexed(job)
                 else sum(1 for p in pods if phase(p) == "Succeeded"))
    old = job.get("status") or {}
    restarts = sum(int(c.get("restartCount") or 0) for p in active
                   for c in (p.get("status") or {}).get("containerStatuses") or [])
    return Counts(active=len(active), ready=sum(1 for p in active if is_ready(p)),
                  succeeded=max(succeeded, int(old.get("succeeded") or 0)),
                  failed=max(sum(1 for p in pods if phase(p) == "Failed"), int(old.get("failed") or 0)),
                  restarts=restarts)


def is_finished(job: Obj) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def failure(job: Obj, counts: Counts, at: float) -> tuple[str, str] | None:
    """(reason, message) when the Job has failed: too many failures, or active for too long."""
    spec = job["spec"]
    failures = counts.failed
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") == "OnFailure":
        failures += counts.restarts
    limit = spec.get("backoffLimit")
    if limit is not None and failures > limit:
        return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
    deadline = spec.get("activeDeadlineSeconds")
    started = parse_time((job.get("status") or {}).get("startTime"))
    if deadline is not None and started is not None and at - started >= deadline:
        return "DeadlineExceeded", "Job was active longer than specified deadline"
    return None


def is_complete(job: Obj, counts: Counts) -> bool:
    completions = job["spec"].get("completions")
    if completions is None:  # a work queue: done when one succeeded and the rest stopped
        return counts.succeeded > 0 and counts.active == 0
    return counts.succeeded >= completions


def wanted_active(job: Obj, counts: Counts) -> int:
    spec = job["spec"]
    if spec.get("suspend"):
        return 0
    parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)
    completions = spec.get("completions")
    if completions is None:
        return 0 if counts.succeeded > 0 else parallelism
    return max(0, min(parallelism, completions - counts.succeeded))


def indexes_to_create(job: Obj, pods: list[Obj], n: int) -> list[int]:
    """The lowest `n` indexes neither succeeded nor running."""
    taken = succeeded_indexes(job, pods) | {i for p in pods if is_active(p) and (i := pod_index(p)) is not None}
    return [i for i in range(job["spec"].get("completions") or 0) if i not in taken][:n]


def format_indexes(indexes: set[int]) -> str:
    """completedIndexes as Kubernetes writes it: "1,3-5,7"."""
    out: list[str] = []
    for i in sorted(indexes):
        if out and out[-1].rpartition("-")[2] == str(i - 1):
            first = out[-1].split("-")[0]
            out[-1] = f"{first}-{i}"
        else:
            out.append(str(i))
    return ",".join(out)


def backoff_delay(failed: int) -> float:
    """Seconds to wait after the last failure before making the next pod."""
    return 0.0 if failed <= 0 else min(BACKOFF_BASE * 2 ** (failed - 1), BACKOFF_MAX)


def last_failure(pods: list[Obj]) -> float | None:
    """When the latest failed pod finished (its containers' finishedAt), or None."""
    times = [parse_time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for p in pods if phase(p) == "Failed" for c in (p.get("status") or {}).get("containerStatuses") or []]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def job_condition(type_: str, reason: str, message: str, status: str = "True") -> Obj:
    stamp = now()
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastProbeTime": stamp,
            "lastTransitionTime": stamp}


def with_condition(conditions: list[Obj], new: Obj) -> list[Obj]:
    """Conditions with `new` in place of its type (kept as it was when nothing but the times would change)."""
    old = next((c for c in conditions if c.get("type") == new["type"]), None)
    if old is not None and (old.get("status"), old.get("reason"), old.get("message")) == (
            new["status"], new["reason"], new["message"]):
        return conditions
    return [c for c in conditions if c.get("type") != new["type"]] + [new]


# -- the controller ------------------------------------------------------------------------------------------

class JobController(Controller):
    name = "job"
    component = "job-controller"
    service_account = "job-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.jobs = ctx.informers["jobs"]
        self.pods = ctx.informers["pods"]
        self.expectations = Expectations()
        self.jobs.add_handler(self.on_job)
        self.pods.add_handler(self.on_pod)

    def on_job(self, event: str, old: Obj | None, new: Obj | None) -> None:
        job = new or old
        assert job is not None
        if event == "delete":
            self.expectations.forget(key_of(job))
        self.enqueue(job)

    def on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """Wake the Job controlling the pod (a Job adopts no orphans: it selects its pods by its own uid)."""
        for key in keys_to_wake("Job", (), old, new):
            if event == "delete" and old is not None:
                self.expectations.creation_observed(key, key_of(old))
            self.queue.add(key)

    def owned_pods(self, job: Obj) -> list[Obj]:
        uid = job["metadata"]["uid"]
        return [p for p in self.pods.by_index("owner", uid) if (controller_of(p) or {}).get("uid") == uid]

    async def sync(self, key: str) -> None:
        cached = self.jobs.get(key)
        if cached is None:
            self.expectations.forget(key)
            return
        job = copy.deepcopy(cached)
        if is_deleting(job):
            return
        if is_finished(job):
            await self.maybe_expire(key, job)
            return
        pods = self.owned_pods(job)
        at = time.time()
        status = copy.deepcopy(job.get("status") or {})
        conditions = list(status.get("conditions") or [])
        if not job["spec"].get("suspend") and not status.get("startTime"):
            status["startTime"] = now()
            job["status"] = status
        counts = count(job, pods)
        failed = failure(job, counts, at)
        if failed is not None:
            reason, message = failed
            await self.delete_pods(key, job, [p for p in pods if is_active(p)])
            conditions = with_condition(conditions, job_condition("FailureTarget", reason, message))
            conditions = with_condition(conditions, job_condition("Failed", reason, message))
            self.record(job, "Warning", reason, message)
            counts = Counts(0, 0, counts.succeeded, counts.failed, counts.restarts)
        elif is_complete(job, counts):
            await self.delete_pods(key, job, [p for p in pods if is_active(p)])
            message = "Reached expected number of succeeded pods"
            conditions = with_condition(conditions, job_condition("SuccessCriteriaMet", "CompletionsReached", message))
            conditions = with_condition(conditions, job_condition("Complete", "CompletionsReached", message))
            status["completionTime"] = now()
            self.record(job, "Normal", "Completed", "Job completed")
            counts = Counts(0, 0, counts.succeeded, counts.failed, counts.restarts)
        else:
            conditions = self.suspension(job, conditions)
            if self.expectations.satisfied(key, self.pods.cache):
                await self.manage(key, job, pods, counts, at)
        status.update(active=counts.active, ready=counts.ready, succeeded=counts.succeeded, failed=counts.failed)
        if is_indexed(job):
            status["completedIndexes"] = format_indexes(succeeded_indexes(job, pods))
        if conditions:
            status["conditions"] = conditions
        if status != (cached.get("status") or {}):
            job["status"] = status
            await self.client.update_status("jobs", job)
        deadline = job["spec"].get("activeDeadlineSeconds")
        started = parse_time(status.get("startTime"))
        if failed is None and deadline is not None and started is not None:
            self.queue.add_after(key, started + deadline - at + 0.1)

    def suspension(self, job: Obj, conditions: list[Obj]) -> list[Obj]:
        """The Suspended condition follows spec.suspend (with JobSuspended / JobResumed events)."""
        suspended = bool(job["spec"].get("suspend"))
        old = next((c for c in conditions if c.get("type") == "Suspended"), None)
        if suspended and (old is None or old.get("status") != "True"):
            self.record(job, "Normal", "Suspended", "Job suspended")
            return with_condition(conditions, job_condition("Suspended", "JobSuspended", "Job suspended"))
        if not suspended and old is not None and old.get("status") == "True":
            self.record(job, "Normal", "Resumed", "Job resumed")
            return with_condition(conditions, job_condition("Suspended", "JobResumed", "Job resumed", "False"))
        return conditions

    async def manage(self, key: str, job: Obj, pods: list[Obj], counts: Counts, at: float) -> None:
        """Create the pods missing (after the failure backoff) or delete the surplus, newest first."""
        active = [p for p in pods if is_active(p)]
        diff = wanted_active(job, counts) - len(active)
        if diff < 0:
            newest_first = sorted(active, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
            await self.delete_pods(key, job, sorted(newest_first, key=is_ready)[:-diff])  # not ready ones first
            return
        if diff == 0:
            return
        last = last_failure(pods)
        wait = (last + backoff_delay(counts.failed) - at) if last is not None else 0.0
        if wait > 0:
            self.queue.add_after(key, wait + 0.1)
            return
        diff = min(diff, BURST)
        if is_indexed(job):
            new_pods = [self.indexed_pod(job, i) for i in indexes_to_create(job, pods, diff)]
        else:
            new_pods = [pod_from_template(job, job["spec"].get("template") or {}) for _ in range(diff)]
        await create_pods(self, self.expectations, key, job, new_pods)

    def indexed_pod(self, job: Obj, index: int) -> Obj:
        """A pod for one completion index: labelled and annotated with it, JOB_COMPLETION_INDEX in its env."""
        name = job["metadata"]["name"]
        pod = pod_from_template(job, job["spec"].get("template") or {}, extra_labels={INDEX: str(index)})
        pod["metadata"]["generateName"] = f"{name}-{index}-"
        pod["metadata"]["annotations"] = {**(pod["metadata"].get("annotations") or {}), INDEX: str(index)}
        pod["spec"].setdefault("hostname", f"{name}-{index}")
        for container in pod["spec"].get("containers") or []:
            env = [e for e in container.get("env") or [] if e.get("name") != "JOB_COMPLETION_INDEX"]
            container["env"] = [*env, {"name": "JOB_COMPLETION_INDEX", "value": str(index)}]
        return pod

    async def delete_pods(self, key: str, job: Obj, pods: list[Obj]) -> None:
        for pod in pods:
            meta = pod["metadata"]
            try:
                await self.client.delete("pods", meta["name"], meta["namespace"], uid=meta.get("uid"))
            except (NotFound, Conflict):
                continue
            self.expectations.expect_delete(key, key_of(pod), meta.get("uid", ""))
            self.record(job, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    async def maybe_expire(self, key: str, job: Obj) -> None:
        """ttlSecondsAfterFinished: delete the finished Job (and, through the garbage collector, its pods)."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        finished = max((parse_time(c.get("lastTransitionTime")) or 0.0
                        for c in job["status"].get("conditions") or [] if c.get("type") in ("Complete", "Failed")),
                       default=0.0)
        wait = finished + ttl - time.time()
        if wait > 0:
            self.queue.add_after(key, wait + 0.1)
        elif await delete_with(self.client, "jobs", job, "Foreground"):
            self.log.info("deleted job %s: finished more than %ss ago", key, ttl)
