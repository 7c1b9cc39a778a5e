"""The load balancer follows cluster.json (masters added or removed at runtime join its rounds of checks) and drops
a killed master's client connections at once."""
import asyncio

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


async def test_drop_closes_the_client_connections_piped_to_a_killed_master_at_once():
    """The master is gone but the balancer has not read its end yet: drop() closes the clients' ends now, so a
    client's next request on a kept-alive connection finds it closed and opens a new one (raftkube.testing's kill)."""
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(100):
            writer.write(data)
        writer.close()

    backend = await asyncio.start_server(echo, "127.0.0.1", 0)
    url = f"https://127.0.0.1:{backend.sockets[0].getsockname()[1]}"
    balancer = Balancer([url], None)
    front = await asyncio.start_server(balancer.handle, "127.0.0.1", 0)
    async with backend, front:
        reader, writer = await asyncio.open_connection("127.0.0.1", front.sockets[0].getsockname()[1])
        writer.write(b"ping")
        assert await reader.read(100) == b"ping"  # piped through to the backend
        balancer.drop(url)
        assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed, though the backend still runs
        writer.close()
