"""Pod status as the kubelet computes it (node/pod_status.py), against Kubernetes' documented pod lifecycle:
phases, the four conditions, complete containerStatuses; and CrashLoopBackOff's delays (node/backoff.py)."""
from kubernetes.client import ApiClient as PythonClient

from node.backoff import CrashLoopBackOff
from node.pod_status import ContainerRecord, phase, pod_status, qos_class


def running(name: str = "app", ready: bool = True) -> ContainerRecord:
    rec = ContainerRecord(name=name, image="python:3.11")
    rec.running("process://42")
    rec.started, rec.ready = True, ready
    return rec


def ended(code: int, name: str = "app") -> ContainerRecord:
    rec = running(name)
    rec.terminated(code)
    return rec


def pod(policy: str = "Always", **status) -> dict:
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": {"restartPolicy": policy, "containers": [
        {"name": "app", "image": "python:3.11"}]}, "status": status}


def test_phases_follow_the_pod_lifecycle():
    waiting = ContainerRecord(name="app")
    assert phase("Always", [], [waiting]) == "Pending"
    assert phase("Always", [ContainerRecord(name="init")], [waiting]) == "Pending"
    assert phase("Always", [], [running()]) == "Running"
    assert phase("Never", [], [ended(0)]) == "Succeeded"
    assert phase("Never", [], [ended(0), ended(1, "b")]) == "Failed"
    assert phase("OnFailure", [], [ended(1)]) == "Running"  # it will be restarted
    assert phase("Always", [], [ended(0)]) == "Running"
    assert phase("Never", [ended(2, "init")], [waiting]) == "Failed"


def test_conditions_and_container_statuses_are_complete():
    status = pod_status(pod(), [], [running(ready=False)], pod_ip="127.1.1.2", host_ip="127.1.1.1",
                        start_time="2024-01-01T00:00:00Z")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert [c["status"] for c in conditions.values()] == ["True", "True", "False", "False"]
    assert conditions["Ready"]["reason"] == "ContainersNotReady"
    assert conditions["Ready"]["message"] == "containers with unready status: [app]"
    (c,) = status["containerStatuses"]
    assert c["containerID"] == "process://42" and c["restartCount"] == 0 and c["lastState"] == {}
    assert status["podIP"] == "127.1.1.2" and status["podIPs"] == [{"ip": "127.1.1.2"}]
    typed = PythonClient()._ApiClient__deserialize({"apiVersion": "v1", "kind": "Pod", **pod(), "status": status},
                                                    "V1Pod")
    assert typed.status.container_statuses[0].image_id == "raftkube://python:3.11"


def test_transition_times_hold_while_a_condition_holds_and_foreign_fields_stay():
    before = {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
                             {"type": "DisruptionTarget", "status": "True"}], "nominatedNodeName": "n2"}
    status = pod_status(pod(**before), [], [running()], pod_ip="", host_ip="h", start_time="t")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert any(c["type"] == "DisruptionTarget" for c in status["conditions"])
    assert "podIP" not in status


def test_a_finished_run_becomes_last_state_when_the_container_waits_again():
    rec = ended(137)
    rec.waiting("CrashLoopBackOff", "back-off 10s")
    out = rec.status()
    assert out["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}
    assert out["lastState"]["terminated"]["exitCode"] == 137 and out["lastState"]["terminated"]["reason"] == "Error"
    assert ContainerRecord.from_json(rec.to_json()) == rec


def test_qos_classes():
    assert qos_class(pod()) == "BestEffort"
    burst = {"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}}
    assert qos_class(burst) == "Burstable"
    same = {"cpu": "1", "memory": "1Gi"}
    assert qos_class({"spec": {"containers": [{"resources": {"requests": same, "limits": same}}]}}) == "Guaranteed"


def test_crash_loop_back_off_doubles_up_to_five_minutes_and_resets_after_a_long_run():
    b = CrashLoopBackOff()
    assert [b.next_delay(1) for _ in range(8)] == [0, 10, 20, 40, 80, 160, 300, 300]
    assert b.next_delay(600) == 0  # ran 10 minutes: a fresh start
    assert b.next_delay(1) == 10
