"""Serving an ASGI app (a dashboard, the hub's ops page) inside an asyncio program."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Generator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside a larger program: the program, not uvicorn, owns SIGINT and SIGTERM."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def listening(host: str, port: int) -> socket.socket:
    """A socket already listening on ``host:port`` (0: a free port), before the server runs.

    Connections made before the server starts wait in the backlog instead of being refused, and the
    port is known at once.
    """
    sock = socket.create_server((host, port), reuse_port=False)
    sock.setblocking(False)
    return sock


def address(sock: socket.socket) -> str:
    """``http://host:port`` of a listening socket."""
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


async def serve_asgi(
    app: ASGIApp,
    sock: socket.socket,
    stop: asyncio.Event,
    *,
    tls: ssl.SSLContext | None = None,
    protocol: type[asyncio.Protocol] | None = None,
) -> None:
    """Serve ``app`` on a listening socket until ``stop`` is set (the socket is closed then).

    ``tls``: serve HTTPS with this context; ``protocol``: uvicorn's HTTP protocol class to use.
    """
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        http=protocol or "auto",
        ssl_context_factory=None if tls is None else (lambda _config, _default: tls),
    )
    server = _EmbeddedServer(config)
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(server.serve(sockets=[sock]))
            await stop.wait()
            server.should_exit = True  # the task group waits for uvicorn to finish
    finally:
        sock.close()
