"""Connecting to NATS as every organisation's system should: quiet errors, reconnects."""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client

log = logging.getLogger(__name__)


async def _on_error(exc: Exception) -> None:
    log.warning("nats.error", extra={"error": f"{type(exc).__name__}: {exc}"})


async def _on_disconnected() -> None:
    log.warning("nats.disconnected")


async def _on_reconnected() -> None:
    log.info("nats.reconnected")


async def connect(url: str, *, name: str, attempts: int = -1) -> Client:
    """Connect to ``url`` (comma-separated servers), trying ``attempts`` times (-1: for ever).

    The same limit applies to reconnecting after the connection is lost; long-running systems
    keep the default, one-shot commands give up after a few attempts.

    Raises:
        nats.errors.NoServersError: no server answered within ``attempts`` attempts.
    """
    return await nats.connect(
        servers=url.split(","),
        name=name,
        connect_timeout=2,
        reconnect_time_wait=0.5,
        max_reconnect_attempts=attempts,
        error_cb=_on_error,
        disconnected_cb=_on_disconnected,
        reconnected_cb=_on_reconnected,
        allow_reconnect=True,
    )
