"""The dashboard in a real headless Chromium (Debian's `chromium`, installed by .ci/run), driven over the
Chrome DevTools protocol with aiohttp's websocket client: no selenium, nothing downloaded.

The story: without a token the page asks for one; with `?token=` it shows three masters and one leader;
the master that served the page is the leader, and it is killed; the page moves to another master on its
own and shows the new leader, the old one unreachable."""
import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import tempfile

import aiohttp
import pytest

from api.client import ApiClientError
from tests.integration.cluster import Cluster, eventually

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (.ci/run installs Debian's)")


class Browser:
    """One headless Chromium with one tab, spoken to over its DevTools websocket."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.session: aiohttp.ClientSession | None = None
        self.ws = None
        self.ids = itertools.count(1)
        self.profile = tempfile.mkdtemp(prefix="raftkube-chromium-")

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--ignore-certificate-errors", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
            "about:blank", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)
        port = None
        async with asyncio.timeout(60):
            while port is None:
                line = (await self.proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise RuntimeError("chromium exited before its DevTools port opened")
                found = re.search(r"DevTools listening on ws://[\d.]+:(\d+)/", line)
                port = found and int(found.group(1))
        asyncio.get_running_loop().create_task(self._drain())
        self.session = aiohttp.ClientSession()
        async with self.session.get(f"http://127.0.0.1:{port}/json/list") as r:
            pages = [t for t in await r.json() if t["type"] == "page"]
        self.ws = await self.session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)

    async def _drain(self) -> None:
        with contextlib.suppress(Exception):
            while await self.proc.stderr.readline():
                pass

    async def call(self, method: str, **params) -> dict:
        msg_id = next(self.ids)
        await self.ws.send_json({"id": msg_id, "method": method, "params": params})
        async with asyncio.timeout(30):
            while True:
                msg = json.loads((await self.ws.receive()).data)
                if msg.get("id") == msg_id:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return msg["result"]

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def js(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        if self.proc is not None and self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


RING = """JSON.stringify([...document.querySelectorAll('#ring .master')].map(
    g => ({name: g.dataset.master, role: g.dataset.role, reachable: g.dataset.reachable === 'true'})))"""


@pytest.fixture
async def browser():
    b = Browser()
    try:
        await b.start()
        yield b
    finally:
        await b.close()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(str(tmp_path / "cluster"), 3)
    yield c
    c.stop()


async def test_dashboard_shows_the_leader_and_follows_a_failover(cluster, browser):
    leader = await cluster.leader()
    origin = cluster.master(leader)["api"]

    await browser.goto(origin + "/dashboard")  # no token: the page asks for one, and shows nothing
    await eventually(lambda: browser.js("document.getElementById('login').classList.contains('show')"),
                     timeout=30, what="the token form")

    await browser.goto(f"{origin}/dashboard?token={cluster.token}")

    async def ring() -> list[dict]:
        return json.loads(await browser.js(RING) or "[]")

    async def shows(expected_leader: str, unreachable: set[str]) -> bool:
        masters = await ring()
        leaders = [m["name"] for m in masters if m["role"] == "leader" and m["reachable"]]
        return (sorted(m["name"] for m in masters) == sorted(cluster.names) and leaders == [expected_leader]
                and {m["name"] for m in masters if not m["reachable"]} == unreachable)

    await eventually(lambda: shows(leader, set()), timeout=30, what=f"three masters, {leader} leading")
    assert await browser.js("location.search") == ""  # the token left the address bar
    assert await browser.js("document.getElementById('summary').textContent") == "3 masters, 1 leader"

    cluster.kill(leader)
    survivors = [n for n in cluster.names if n != leader]
    new_leader = await cluster.leader(among=survivors, timeout=30)
    await eventually(lambda: shows(new_leader, {leader}), timeout=45,
                     what=f"the page, served by the dead {leader}, showing {new_leader} leading")
    conn = await browser.js("document.getElementById('conn').textContent")
    assert "live via" in conn and origin not in conn, conn  # through another master's origin (CORS)
    if os.environ.get("DASHBOARD_SCREENSHOT"):  # to look at it: DASHBOARD_SCREENSHOT=/tmp/d.png pytest ...
        shot = await browser.call("Page.captureScreenshot", format="png")
        with open(os.environ["DASHBOARD_SCREENSHOT"], "wb") as f:
            f.write(base64.b64decode(shot["data"]))


XSS = '<img src=x onerror="document.title=\'pwned\'">'


async def test_what_users_store_is_shown_as_text_never_run_as_html(cluster, browser):
    """An Event's reason and message, a Lease's holder, a Deployment's name: all the page renders from objects
    anyone with write access can store. Markup in them shows as text; no script runs."""
    api = cluster.api()
    try:
        await api.create("events", {"metadata": {"name": "xss", "namespace": "default"}, "reason": XSS,
                                     "message": XSS, "type": "Warning", "involvedObject": {"kind": "Pod", "name": XSS},
                                     "lastTimestamp": "2030-01-01T00:00:00Z"}, namespace="default")
        await api.create("leases", {"metadata": {"name": "xss", "namespace": "kube-system"},
                                    "spec": {"holderIdentity": XSS, "leaseTransitions": 3}}, namespace="kube-system")
        with pytest.raises(ApiClientError) as refused:  # numbers the page shows are numbers: the API sees to it
            await api.create("leases", {"metadata": {"name": "xss2", "namespace": "kube-system"},
                                        "spec": {"leaseTransitions": XSS}}, namespace="kube-system")
        assert refused.value.status == 400
    finally:
        await api.close()
    origin = cluster.master(cluster.names[0])["api"]
    await browser.goto(f"{origin}/dashboard?token={cluster.token}")
    await eventually(lambda: browser.js("document.getElementById('events').textContent.includes('onerror')"),
                     timeout=30, what="the event on the page, as text")
    await eventually(lambda: browser.js("document.getElementById('leases').textContent.includes('onerror')"),
                     timeout=30, what="the lease on the page, as text")
    assert await browser.js("document.title") != "pwned"
    assert await browser.js("document.querySelectorAll('#events img, #leases img').length") == 0
