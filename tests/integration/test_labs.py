"""Every lab catches what it breaks: with its one mechanism off (`--lab NAME`), the campaign aimed at it ends with an
anomaly of the kind the lab is about; with every mechanism on, the same campaign finds nothing (one control run,
to keep the suite lean). Each lab takes 20-30 s on two loaded cores."""
import pytest

from raftkube import lab
from raftkube.campaign import campaign
from raftkube.labs import LABS, find

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", [x.name for x in LABS])
async def test_the_checkers_catch_the_lab(name, tmp_path):
    broken = find(name)
    run = await campaign(str(tmp_path / "c"), lab.plan(broken))
    assert lab.caught(broken, run), (run.report["timeline"], [f.summary for f in run.found])
    shown = [f for f in run.found if f.kind in broken.expect][0]
    assert shown.ops or shown.details  # the history, or the events, that show it


async def test_with_the_mechanism_on_the_same_run_passes(tmp_path):
    run = await campaign(str(tmp_path / "c"), lab.plan(find("stale-reads"), control=True))
    assert run.report["anomalies"] == 0 and run.found == [], [f.summary for f in run.found]
    assert run.report["operations"]["ok"] > 0 and run.report["timeline"]  # it ran, with its fault
