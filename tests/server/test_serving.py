"""The real listening socket and uvicorn settings of ``tarry dev``/``serve``: TCP_NODELAY, idle and slow clients."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

import tarry
from tarry._server import create_app, listen, server_config

Running = tuple[uvicorn.Server, int]
SHORT = 0.3  # seconds: the keep-alive and head timeouts of these tests
CLOSED_WITHIN = 10.0  # seconds a test waits for the server to close a connection


async def start(app: tarry.Tarry, **config: Any) -> AsyncIterator[Running]:
    listener = listen("127.0.0.1", 0)
    port = listener.getsockname()[1]
    server = uvicorn.Server(server_config(create_app(app, manage=False), **config))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # pytest owns the signals
    async with app:
        task = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            yield server, port
        finally:
            server.should_exit = True
            await task


@pytest.fixture
async def running(app: tarry.Tarry) -> AsyncIterator[Running]:
    async for value in start(app, keep_alive=SHORT, head_timeout=SHORT):
        yield value


async def request(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, path: str = "/healthz") -> bytes:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    return head + await reader.readexactly(length)


async def closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection (end of stream) within CLOSED_WITHIN seconds."""
    try:
        async with asyncio.timeout(CLOSED_WITHIN):
            return await reader.read() == b""
    except TimeoutError:
        return False


def test_the_listening_socket_is_tcp() -> None:
    listener = listen("127.0.0.1", 0)
    try:
        assert listener.proto == socket.IPPROTO_TCP and listener.type == socket.SOCK_STREAM
    finally:
        listener.close()


async def test_accepted_connections_have_tcp_nodelay(running: Running) -> None:
    server, port = running
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert b"200 OK" in await request(writer, reader)
    [connection] = server.server_state.connections
    accepted = connection.transport.get_extra_info("socket")  # type: ignore[attr-defined]  # uvicorn's protocol
    assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    writer.close()


async def test_an_idle_connection_is_closed(running: Running) -> None:
    _, port = running
    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # connects, never sends
    assert await closed(reader)
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed(running: Running) -> None:
    _, port = running
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert b"200 OK" in await request(writer, reader)
    assert b"200 OK" in await request(writer, reader)  # kept alive between requests
    assert await closed(reader)
    writer.close()


async def test_a_client_that_sends_its_headers_slowly_is_cut_off(running: Running) -> None:
    _, port = running
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    drip = asyncio.create_task(_drip(writer))  # one header line every 50 ms, never the blank line
    try:
        assert await closed(reader)
    finally:
        drip.cancel()
        writer.close()


async def _drip(writer: asyncio.StreamWriter) -> None:
    for n in range(10_000):
        writer.write(f"X-Slow-{n}: y\r\n".encode())
        await writer.drain()
        await asyncio.sleep(0.05)


def test_the_settings_bound_what_a_connection_may_hold() -> None:
    config = server_config(object())
    assert config.timeout_keep_alive and config.timeout_graceful_shutdown
    assert config.h11_max_incomplete_event_size and config.limit_concurrency
