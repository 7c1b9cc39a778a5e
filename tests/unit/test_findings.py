"""What the checkers found, shown: findings from hand-made records, the HTML timeline, and the export to Jepsen's
history format."""
import json
import math
from types import SimpleNamespace as NS

from raftkube import findings, history_export, timeline, timeline_html
from raftkube.linearizability import FAILED, OK, UNKNOWN, Op, check, minimal_failing
from raftkube.workload import Append, LeaseLog, WatchLog, value_for


def records(**workload) -> findings.Records:
    w = NS(**{"history": [], "appends": [], "watch_logs": [], "lease_logs": [], **workload})
    return findings.Records(w, reference=[], final_values={}, final_read=(50.0, 50.1),
                            faults=[(0.5, "partition-leader: m1 | m2,m3"), (9.0, "healed the partition")], bad_keys=[])


def test_a_stale_read_is_shown_with_the_write_it_missed_and_the_fault_in_force():
    r = records(history=[Op("k", "write", 1.0, 1.1, OK, 1, client=0), Op("k", "write", 2.0, 2.1, OK, 2, client=1),
                         Op("k", "read", 3.0, 3.1, OK, 1, client=2, via="m1")])
    r.bad_keys = ["k"]
    [f] = findings.find(r)
    assert f.kind == "linearizability" and [op.value for op in f.ops] == [1, 2, 1]
    assert f.faults == [(0.5, "partition-leader: m1 | m2,m3")]  # the last fault before: still in force
    text = findings.render([f])
    assert "r(k)=1" in text and "via m1" in text and "partition-leader" in text and "-0.500s" in text


def test_a_lost_acknowledged_write_is_a_write_then_the_checkers_read_that_misses_it():
    appends = [Append("set/0-1", 1.0, 1.2, OK, client=0, via="m2"), Append("set/0-2", 2.0, 2.2, OK, client=0)]
    r = records(appends=appends)
    r.final_values = {"set/0-2": value_for("set/0-2", 1)}
    [f] = findings.find(r)
    assert f.kind == "durability" and "set/0-1" in f.summary
    write, read = f.ops
    assert (write.kind, write.outcome, read.kind, read.value, read.client) == ("write", OK, "read", None,
                                                                             timeline.CHECKER)
    assert "checker" in findings.render([f])
    history = findings.register_history(r)
    assert len(history) == 4 and check(history)["bad_keys"] == ["set/0-1"]  # a lost write is a register anomaly


def test_a_watch_gap_names_the_revision_never_delivered_and_its_neighbours():
    ref = [(5, "a", "PUT", ""), (6, "b", "PUT", ""), (7, "c", "PUT", "")]
    r = records(watch_logs=[WatchLog(5, [ref[0], ref[2]])])
    r.reference = ref
    [f] = findings.find(r)
    assert f.kind == "watch" and "1 missed" in f.summary
    assert "never delivered: revision 6 PUT b; the watch went revision 5 PUT a -> (gap) -> revision 7 PUT c" \
        in f.details


def test_a_lease_gone_early_is_told_keepalive_by_keepalive_with_the_faults():
    log = LeaseLog(7, 10, granted=0.0, keepalives=[(1.0, 1.05, 10), (2.0, 2.05, 0)])
    [f] = findings.find(records(lease_logs=[log]))
    assert f.kind == "lease" and "gone 1.05s after a keepalive" in f.summary
    assert any("nemesis: partition-leader" in line for line in f.details) and "gone" in f.details[-1]


def test_a_long_lived_leases_story_keeps_its_grant_and_the_steps_before_it_was_found_gone():
    keepalives = [(float(t), t + 0.05, 10) for t in range(1, 30)] + [(30.0, 30.05, 0)]
    [f] = findings.find(records(lease_logs=[LeaseLog(7, 10, granted=0.0, keepalives=keepalives)]))
    assert len(f.details) == findings.LEASE_STEPS + 1 and "granted lease 7" in f.details[0]
    assert f.details[1].strip() == "..." and "gone" in f.details[-1]


def test_nothing_found_is_said_so():
    assert findings.find(records()) == [] and "nothing wrong" in findings.render([])


def test_the_html_page_is_self_contained_escaped_and_has_a_row_per_client():
    ops = [Op("k", "write", 1.0, 1.1, OK, "<b>", client=0), Op("k", "read", 2.0, math.inf, UNKNOWN, None, client=1)]
    page = timeline_html.render("lab <x>", ["summary & more"],
                                [findings.Finding("linearizability", "why", ops, faults=[(1.05, "kill m1")])])
    assert "<script" not in page and "src=" not in page and "href=" not in page
    assert "&lt;b&gt;" in page and "lab &lt;x&gt;" in page and "summary &amp; more" in page
    assert page.count("class='row'") == 2 and "op unknown" in page and "kill m1" in page


def test_the_export_is_jepsens_history_an_invocation_and_a_completion_per_operation():
    ops = [Op("k", "write", 1.0, 1.5, OK, 3, client=0),
           Op("k", "cas", 1.2, 1.3, OK, 4, expected=3, succeeded=False, client=1),
           Op("k", "write", 2.0, 3.0, UNKNOWN, 5, client=0),  # a timeout: :info, then a new process for client 0
           Op("k", "read", 3.5, 3.6, OK, 3, client=0),
           Op("k", "write", 3.7, 3.8, FAILED, 6, client=1),
           Op("k", "read", 4.0, 4.1, OK, None, client=timeline.CHECKER)]
    history = history_export.entries(ops)
    assert [(e["process"], e["type"], e["f"]) for e in history] == [
        (0, "invoke", "write"), (1, "invoke", "cas"), (1, "fail", "cas"), (0, "ok", "write"),
        (0, "invoke", "write"), (0, "info", "write"), (2, "invoke", "read"), (2, "ok", "read"),
        (1, "invoke", "write"), (1, "fail", "write"), (3, "invoke", "read"), (3, "ok", "read")]
    assert history[1]["value"] == [3, 4] and history[6]["value"] is None and history[7]["value"] == 3
    assert history[0]["time"] == 0 and history[3]["time"] == 500_000_000 and history[-1]["index"] == 11
    edn = history_export.dumps(history, "edn")
    assert edn.startswith("[{:index 0, :time 0, :process 0, :f :write, :key \"k\", :type :invoke, :value 3}")
    assert ":value [3 4]" in edn and ":value nil" in edn and ":type :info" in edn
    assert json.loads(history_export.dumps(history, "json")) == history


def test_the_smallest_failing_history_comes_from_a_long_one():
    """The anomaly at the end of 300 operations: pass after pass of deletions, until none is possible."""
    ops = [Op("k", "write", float(i), i + 0.5, OK, i, client=i % 3) for i in range(300)]
    ops.append(Op("k", "read", 301.0, 301.5, OK, 5, client=1))  # long after 299 was written
    kept = minimal_failing(ops)
    assert [(op.kind, op.value) for op in kept] == [("write", 5), ("write", 299), ("read", 5)]


def test_a_failed_compare_is_never_left_without_the_write_that_made_it_fail():
    """Alone, `cas(k) None->2 no` fails (an empty register would have matched): it must not become the 'anomaly'
    once the write before it is dropped. The read of a value nobody wrote is the real one."""
    ops = [Op("k", "write", 0.0, 1.0, OK, 5), Op("k", "read", 2.0, 3.0, OK, 1),
           Op("k", "cas", 4.0, 5.0, OK, 2, expected=None, succeeded=False)]
    assert [(op.kind, op.value) for op in minimal_failing(ops)] == [("read", 1)]
