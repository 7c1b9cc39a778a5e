"""The load balancer follows cluster.json: masters added or removed at runtime join its rounds of checks."""
import aiohttp

from raftkube.balancer import Balancer


async def test_each_round_of_checks_asks_who_the_masters_are_now():
    current = ["https://127.0.0.1:1"]
    balancer = Balancer(list(current), None, discover=lambda: list(current))
    async with aiohttp.ClientSession() as session:
        await balancer.check(session)
        assert balancer.backends == ["https://127.0.0.1:1"] and balancer.alive == set()  # nothing listens there
        current.append("https://127.0.0.1:2")
        await balancer.check(session)
        assert balancer.backends == ["https://127.0.0.1:1", "https://127.0.0.1:2"]
        current.clear()  # cluster.json rewritten or gone: keep what we had
        await balancer.check(session)
        assert len(balancer.backends) == 2
    assert set(balancer.candidates()) == {"https://127.0.0.1:1", "https://127.0.0.1:2"}
