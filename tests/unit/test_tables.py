"""kubectl get output: Table columns as kubectl prints them."""
from api.registry import lookup
from api.tables import table


def test_tables_have_kubectls_usual_columns():
    pod = {"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"phase": "Running", "podIP": "10.0.0.5",
                      "containerStatuses": [{"ready": True, "restartCount": 2}, {"ready": False, "restartCount": 1}]}}
    t = table(lookup("", "v1", "pods"), [pod], "7")
    assert [c["name"] for c in t["columnDefinitions"] if c["priority"] == 0] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert t["rows"][0]["cells"][:4] == ["p", "1/2", "Running", "3"]
    assert t["rows"][0]["cells"][5:] == ["10.0.0.5", "n1"] and t["metadata"] == {"resourceVersion": "7"}
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_the_pod_status_column_says_what_kubectl_says():
    from api.tables import _pod_status

    def pod(phase, containers=(), inits=(), init_specs=0, **meta):
        return {"metadata": meta, "spec": {"initContainers": [{}] * init_specs},
                "status": {"phase": phase, "containerStatuses": list(containers), "initContainerStatuses": list(inits),
                           "conditions": [{"type": "Ready", "status": "True"}]}}
    done = {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    failed = {"state": {"terminated": {"exitCode": 3, "reason": "Error"}}}
    crashing = {"state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    running = {"state": {"running": {}}, "ready": True}
    assert _pod_status(pod("Succeeded", [done])) == "Completed"
    assert _pod_status(pod("Failed", [failed])) == "Error"
    assert _pod_status(pod("Running", [crashing])) == "CrashLoopBackOff"
    assert _pod_status(pod("Running", [running, done])) == "Running"
    assert _pod_status(pod("Pending", [], [done, {"state": {"running": {}}}], init_specs=2)) == "Init:1/2"
    assert _pod_status(pod("Pending", [], [failed], init_specs=1)) == "Init:Error"
    assert _pod_status(pod("Running", [running], deletionTimestamp="2026-01-01T00:00:00Z")) == "Terminating"
