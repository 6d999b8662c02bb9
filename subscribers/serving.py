"""Serving an ASGI app (a dashboard, the hub's ops page) inside an asyncio program."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside a larger program: the program, not uvicorn, owns SIGINT and SIGTERM."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_asgi(app: ASGIApp, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
    )
    server = _EmbeddedServer(config)
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(server.serve())
        await stop.wait()
        server.should_exit = True  # the task group waits for uvicorn to finish
