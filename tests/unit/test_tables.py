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
