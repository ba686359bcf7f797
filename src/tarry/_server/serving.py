"""How ``tarry dev`` and ``tarry serve`` listen: the socket, uvicorn's settings, and connection deadlines.

The socket is made with ``IPPROTO_TCP`` so that asyncio sets ``TCP_NODELAY`` on
every accepted connection (with protocol 0 it does not, and each keep-alive
response waits for the client's delayed ACK). A connection that sends no
complete request head within ``HEAD_TIMEOUT`` is closed; a body that takes
longer than ``routes.BODY_TIMEOUT`` is answered ``408`` by the app.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

KEEP_ALIVE = 5  # seconds an idle keep-alive connection is kept
HEAD_TIMEOUT = 10.0  # seconds a client has to send a request's line and headers
MAX_HEAD = 16 * 1024  # bytes of request line and headers h11 buffers (a 400 beyond)
MAX_CONNECTIONS = 1000  # connections and requests at once; more are answered 503
GRACEFUL_SHUTDOWN = 10  # seconds requests in flight get when the server stops


def listen(host: str, port: int) -> socket.socket:
    """A bound TCP socket (``OSError`` if the address is taken or not ours)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    return listener


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline on each request head (uvicorn has none)."""

    head_timeout = HEAD_TIMEOUT
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
        super().connection_made(transport)
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._arm_head_deadline()  # bytes of a new request: its head must be complete in time
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()


def server_config(asgi: Any, *, keep_alive: float = KEEP_ALIVE, head_timeout: float = HEAD_TIMEOUT) -> uvicorn.Config:
    """uvicorn's settings for Tarry's server: bounded idle time, head size, concurrency and shutdown."""
    protocol = type("TarryProtocol", (_Protocol,), {"head_timeout": head_timeout})
    return uvicorn.Config(
        asgi, log_level="warning", lifespan="on", http=protocol, timeout_keep_alive=keep_alive,  # type: ignore[arg-type]  # uvicorn accepts a float
        h11_max_incomplete_event_size=MAX_HEAD, limit_concurrency=MAX_CONNECTIONS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )  # fmt: skip
