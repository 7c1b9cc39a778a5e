"""Job status arithmetic: counts, failure by backoffLimit and deadline, completion, how many pods to run."""
from __future__ import annotations

import datetime

from controllers.job import (INDEX, Counts, backoff_delay, count, failure, format_indexes, indexes_to_create,
                             is_complete, is_finished, last_failure, wanted_active, with_condition, job_condition)


def stamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(**spec) -> dict:
    base = {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
            "template": {"spec": {"restartPolicy": "Never"}}}
    return {"metadata": {"name": "j", "namespace": "ns", "uid": "u"}, "spec": {**base, **spec}, "status": {}}


def pod(phase: str, *, ready: bool = False, index: int | None = None, restarts: int = 0, finished: float | None = None,
        deleting: bool = False) -> dict:
    meta: dict = {"name": "p", "namespace": "ns"}
    if index is not None:
        meta["annotations"] = {INDEX: str(index)}
    if deleting:
        meta["deletionTimestamp"] = stamp(0)
    state = {"terminated": {"finishedAt": stamp(finished)}} if finished is not None else {}
    return {"metadata": meta, "spec": {},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"restartCount": restarts, "state": state}]}}


def test_counts_come_from_the_pods_and_never_go_back():
    pods = [pod("Running", ready=True), pod("Pending"), pod("Succeeded"), pod("Failed"), pod("Failed"),
            pod("Running", deleting=True)]
    assert count(job(), pods) == Counts(active=2, ready=1, succeeded=1, failed=2, restarts=0)
    earlier = {**job(), "status": {"succeeded": 3, "failed": 1}}  # finished pods deleted by hand
    assert (count(earlier, pods).succeeded, count(earlier, pods).failed) == (3, 2)


def test_failures_beyond_the_backoff_limit_fail_the_job():
    """backoffLimit 2 allows two failures; the third fails the Job (Kubernetes: failed > backoffLimit)."""
    assert failure(job(backoffLimit=2), Counts(0, 0, 0, 2, 0), 0) is None
    assert failure(job(backoffLimit=2), Counts(0, 0, 0, 3, 0), 0)[0] == "BackoffLimitExceeded"
    assert failure(job(backoffLimit=0), Counts(0, 0, 0, 1, 0), 0)[0] == "BackoffLimitExceeded"


def test_with_restart_policy_on_failure_container_restarts_count_as_failures():
    on_failure = job(backoffLimit=2, template={"spec": {"restartPolicy": "OnFailure"}})
    assert failure(on_failure, Counts(1, 0, 0, 0, 3), 0)[0] == "BackoffLimitExceeded"
    assert failure(job(backoffLimit=2), Counts(1, 0, 0, 0, 3), 0) is None


def test_active_deadline_counts_from_start_time():
    j = {**job(activeDeadlineSeconds=10), "status": {"startTime": stamp(1000)}}
    assert failure(j, Counts(1, 0, 0, 0, 0), 1009) is None
    assert failure(j, Counts(1, 0, 0, 0, 0), 1010) == ("DeadlineExceeded", "Job was active longer than specified "
                                                                          "deadline")


def test_completion_and_how_many_pods_to_run():
    j = job(completions=5, parallelism=2)
    assert wanted_active(j, Counts(0, 0, 0, 0, 0)) == 2
    assert wanted_active(j, Counts(0, 0, 4, 0, 0)) == 1  # only one left to do
    assert not is_complete(j, Counts(1, 0, 4, 0, 0)) and is_complete(j, Counts(0, 0, 5, 0, 0))
    assert wanted_active(job(completions=5, parallelism=2, suspend=True), Counts(0, 0, 0, 0, 0)) == 0
    queue = job(completions=None, parallelism=3)  # a work queue: done when one succeeded and none runs
    assert wanted_active(queue, Counts(0, 0, 0, 0, 0)) == 3
    assert wanted_active(queue, Counts(2, 0, 1, 0, 0)) == 0
    assert not is_complete(queue, Counts(2, 0, 1, 0, 0)) and is_complete(queue, Counts(0, 0, 1, 0, 0))


def test_indexed_jobs_run_the_lowest_missing_indexes_and_report_them_as_ranges():
    j = job(completionMode="Indexed", completions=6, parallelism=3)
    pods = [pod("Succeeded", index=0), pod("Running", index=1), pod("Failed", index=2), pod("Succeeded", index=4)]
    assert indexes_to_create(j, pods, 2) == [2, 3]
    assert count(j, pods + [pod("Succeeded", index=4)]).succeeded == 2  # per index, not per pod
    assert format_indexes({0, 1, 2, 4, 6, 7}) == "0-2,4,6-7" and format_indexes(set()) == ""


def test_pods_after_failures_wait_a_doubling_backoff():
    assert [backoff_delay(n) for n in (0, 1, 2, 3)] == [0.0, 10.0, 20.0, 40.0]
    assert backoff_delay(20) == 360.0
    assert last_failure([pod("Failed", finished=100), pod("Failed", finished=200), pod("Running")]) == 200


def test_conditions_keep_their_times_when_nothing_changes():
    first = with_condition([], job_condition("Complete", "CompletionsReached", "done"))
    assert with_condition(first, job_condition("Complete", "CompletionsReached", "done")) is first
    assert is_finished({"status": {"conditions": first}})
    assert not is_finished({"status": {"conditions": [job_condition("Complete", "x", "y", "False")]}})
