"""Connecting to NATS as every organisation's system should: quiet errors, reconnects."""

from __future__ import annotations

import logging

import nats
import nats.errors
from nats.aio.client import Client

from subscribers.errors import NatsUnavailable

log = logging.getLogger(__name__)


async def _on_error(exc: Exception) -> None:
    log.warning("nats.error", extra={"error": f"{type(exc).__name__}: {exc}"})


async def _on_disconnected() -> None:
    log.warning("nats.disconnected")


async def _on_reconnected() -> None:
    log.info("nats.reconnected")


async def connect(
    url: str, *, name: str, attempts: int = -1, reconnect_attempts: int | None = None
) -> Client:
    """Connect to ``url`` (comma-separated servers), trying ``attempts`` times (-1: for ever).

    The same limit applies to reconnecting after the connection is lost, unless
    ``reconnect_attempts`` says otherwise: long-running systems keep the default, one-shot
    commands give up after a few attempts, and a service started by hand may fail fast at start
    (a wrong address) yet ride out a later restart of the server (``reconnect_attempts=-1``).

    Raises:
        NatsUnavailable: no server answered within ``attempts`` attempts.
    """
    try:
        nc = await nats.connect(
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
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        raise NatsUnavailable(url, f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
    if reconnect_attempts is not None:
        nc.options["max_reconnect_attempts"] = reconnect_attempts  # read at each reconnect
    return nc
