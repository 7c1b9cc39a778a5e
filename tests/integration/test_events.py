"""The event recorder controllers, the scheduler and kubelets share: one Event per story, its count rising."""
from api.event_recorder import EventRecorder
from tests.integration.cluster import Cluster


async def test_repeats_bump_one_events_count_and_distinct_reasons_make_new_events(tmp_path):
    cluster = Cluster(str(tmp_path / "c"), 1)
    try:
        async with cluster.api() as api:
            cm = await api.create("configmaps", {"metadata": {"name": "cfg", "namespace": "default"}})
            cm = {"kind": "ConfigMap", "apiVersion": "v1", **cm}
            recorder = EventRecorder(api, "test-controller", host="m1")
            for _ in range(3):
                recorder.record(cm, "Warning", "BackOff", "Back-off restarting failed container")
            recorder.record(cm, "Normal", "Synced", "all good")
            await recorder.flush()
            events, _ = await api.list("events", "default", field_selector="involvedObject.name=cfg")
            by_reason = {e["reason"]: e for e in events}
            assert len(events) == 2 and by_reason["BackOff"]["count"] == 3 and by_reason["Synced"]["count"] == 1
            backoff = by_reason["BackOff"]
            assert backoff["type"] == "Warning" and backoff["source"] == {"component": "test-controller", "host": "m1"}
            assert backoff["involvedObject"]["uid"] == cm["metadata"]["uid"]
            assert backoff["involvedObject"]["kind"] == "ConfigMap"
    finally:
        cluster.stop()
