"""The Job controller on a real master (Kubernetes' documented Job behaviour): pods run `parallelism` at a time
until `completions` succeeded, then Complete with a completionTime, the finished pods kept for `kubectl logs`;
failures beyond backoffLimit fail it (BackoffLimitExceeded) after a replacement pod; activeDeadlineSeconds fails it
(DeadlineExceeded) and deletes the running pods; an Indexed Job runs one pod per index. The test plays the
kubelet (kube.set_pod_phase); pods stay unbound (no nodes), which the Job controller does not mind."""
from __future__ import annotations

from api.client import ApiClient
from tests.integration.cluster import eventually
from tests.integration.kube import namespace, set_pod_phase


def job(name: str, **spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}},
                     **spec}}


async def pods_of(api: ApiClient, ns: str, name: str, phase: str | None = None) -> list[dict]:
    pods, _ = await api.list("pods", ns, label_selector=f"batch.kubernetes.io/job-name={name}")
    return [p for p in pods if phase is None or p["status"].get("phase") == phase]


def conditions(job: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in job.get("status", {}).get("conditions") or []}


async def reasons(api: ApiClient, ns: str) -> list[str]:
    events, _ = await api.list("events", ns)
    return [e["reason"] for e in events]


async def test_a_job_runs_parallelism_pods_until_completions_succeed(cp):
    async with namespace(cp, "job") as (api, ns):
        await api.create("jobs", job("pi", completions=3, parallelism=2), ns)
        pending = await eventually(lambda: _exactly(pods_of(api, ns, "pi", "Pending"), 2), timeout=30,
                                   what="2 pods at a time")
        pod = pending[0]
        assert pod["metadata"]["labels"]["job-name"] == "pi" and pod["metadata"]["labels"]["controller-uid"]
        for p in pending:
            await set_pod_phase(api, p, "Succeeded", retries=10)
        third = await eventually(lambda: _exactly(pods_of(api, ns, "pi", "Pending"), 1), timeout=30,
                                 what="one more pod for the last completion")
        await set_pod_phase(api, third[0], "Succeeded", retries=10)

        async def complete() -> dict | None:
            j = await api.get("jobs", "pi", ns)
            return j if conditions(j).get("Complete") == ("True", "CompletionsReached") else None
        done = await eventually(complete, timeout=30, what="Complete")
        assert done["status"]["succeeded"] == 3 and done["status"]["active"] == 0
        assert done["status"]["startTime"] and done["status"]["completionTime"]
        assert conditions(done)["SuccessCriteriaMet"][0] == "True"
        assert len(await pods_of(api, ns, "pi", "Succeeded")) == 3  # kept for kubectl logs
        assert {"SuccessfulCreate", "Completed"} <= set(await eventually(lambda: reasons(api, ns)))


async def test_failures_beyond_the_backoff_limit_fail_the_job(cp):
    """backoffLimit 1: the first failure gets a replacement (after the 10 s backoff), the second fails the Job."""
    async with namespace(cp, "job") as (api, ns):
        await api.create("jobs", job("flaky", backoffLimit=1), ns)
        [first] = await eventually(lambda: _exactly(pods_of(api, ns, "flaky", "Pending"), 1), timeout=30,
                                   what="the first pod")
        await set_pod_phase(api, first, "Failed", retries=10)
        [second] = await eventually(lambda: _exactly(pods_of(api, ns, "flaky", "Pending"), 1), timeout=40,
                                    what="a replacement after the backoff")
        await set_pod_phase(api, second, "Failed", retries=10)

        async def failed() -> dict | None:
            j = await api.get("jobs", "flaky", ns)
            return j if conditions(j).get("Failed") == ("True", "BackoffLimitExceeded") else None
        j = await eventually(failed, timeout=30, what="Failed with BackoffLimitExceeded")
        assert j["status"]["failed"] == 2 and not j["status"].get("active")
        assert len(await pods_of(api, ns, "flaky")) == 2  # no third pod
        assert "BackoffLimitExceeded" in await eventually(lambda: reasons(api, ns))


async def test_active_deadline_fails_the_job_and_deletes_its_pods(cp):
    async with namespace(cp, "job") as (api, ns):
        await api.create("jobs", job("slow", parallelism=2, completions=2, activeDeadlineSeconds=2), ns)

        async def failed() -> dict | None:
            j = await api.get("jobs", "slow", ns)
            return j if conditions(j).get("Failed") == ("True", "DeadlineExceeded") else None
        await eventually(failed, timeout=30, what="Failed with DeadlineExceeded")
        await eventually(lambda: _exactly(pods_of(api, ns, "slow"), 0), timeout=30, what="its pods deleted")


async def test_an_indexed_job_runs_one_pod_per_index(cp):
    async with namespace(cp, "job") as (api, ns):
        await api.create("jobs", job("idx", completions=3, parallelism=3, completionMode="Indexed"), ns)
        pods = await eventually(lambda: _exactly(pods_of(api, ns, "idx", "Pending"), 3), timeout=30,
                                what="3 indexed pods")
        index = "batch.kubernetes.io/job-completion-index"
        assert sorted(p["metadata"]["annotations"][index] for p in pods) == ["0", "1", "2"]
        for p in pods:
            await set_pod_phase(api, p, "Succeeded", retries=10)

        async def complete() -> dict | None:
            j = await api.get("jobs", "idx", ns)
            return j if conditions(j).get("Complete", ("",))[0] == "True" else None
        assert (await eventually(complete, timeout=30, what="Complete"))["status"]["completedIndexes"] == "0-2"


async def _exactly(pods, n: int) -> list[dict] | None:
    found = await pods
    return found if len(found) == n and n else (True if n == 0 and not found else None)
