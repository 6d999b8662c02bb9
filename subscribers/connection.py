"""Connecting to NATS as every organisation's system should: its own credentials, TLS, reconnects.

An organisation connects with the credentials file the hub issued it (``HUB_CREDENTIALS``, or
``credentials=``); its replies come on its own inbox prefix (``_INBOX.<org>``), the only inbox its
permissions allow. ``HUB_TLS_CA`` (or ``tls_ca=``) names the county's CA certificate when the
server requires TLS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from subscribers.credentials import CredentialsFile, read_credentials
from subscribers.errors import NatsUnavailable, NotAuthorized

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0
RETRY_WAIT_S = 0.5
# seconds as floats: nats-py annotates these int and takes either
TIMINGS: dict[str, Any] = {
    "connect_timeout": CONNECT_TIMEOUT_S,
    "reconnect_time_wait": RETRY_WAIT_S,
}
# a cluster that has just started may answer "JetStream not enabled for account" (503) for a
# moment: the account is enabled node by node as its JWT is loaded
UNAVAILABLE_WAIT_S = 30.0
UNAVAILABLE_RETRY_S = 0.5
UNAVAILABLE_LOG_EVERY = 10  # refusals: a server without JetStream is not logged 60 times
ErrorCallback = Callable[[Exception], Awaitable[None]]
T = TypeVar("T")

_IDENTITIES: weakref.WeakKeyDictionary[Client, CredentialsFile] = weakref.WeakKeyDictionary()


def identity_of(nc: Client) -> str | None:
    """The identity (organisation id) a connection was opened with, when ``connect`` opened it."""
    found = _IDENTITIES.get(nc)
    return found.name if found else None


def credentials_of(nc: Client) -> CredentialsFile | None:
    """The credentials file a connection was opened with, when ``connect`` opened it."""
    return _IDENTITIES.get(nc)


async def _connect(
    nc: Client, url: str, name: str, attempts: int, on_error: ErrorCallback, options: dict[str, Any]
) -> None:
    await nc.connect(
        servers=url.split(","),
        name=name,
        max_reconnect_attempts=attempts,
        error_cb=on_error,
        disconnected_cb=_on_disconnected,
        reconnected_cb=_on_reconnected,
        allow_reconnect=True,
        **(TIMINGS | options),
    )


async def _on_disconnected() -> None:
    log.warning("nats.disconnected")


async def _on_reconnected() -> None:
    log.info("nats.reconnected")


def _chosen(given: Path | None, variable: str) -> Path | None:
    if given is not None:
        return given
    found = os.environ.get(variable)
    return Path(found) if found else None


async def connect(
    url: str | None = None,
    *,
    name: str,
    attempts: int = -1,
    reconnect_attempts: int | None = None,
    credentials: Path | None = None,
    tls_ca: Path | None = None,
) -> Client:
    """Connect to ``url`` (comma-separated servers), trying ``attempts`` times (-1: for ever).

    The same limit applies to reconnecting after the connection is lost, unless
    ``reconnect_attempts`` says otherwise: long-running systems keep the default, one-shot
    commands give up after a few attempts, and a service started by hand may fail fast at start
    (a wrong address) yet ride out a later restart of the server (``reconnect_attempts=-1``).

    Args:
        url: the server(s); ``HUB_NATS_URL`` when not given.
        name: the connection's name, shown in the server's monitoring.
        attempts: connection attempts before giving up.
        reconnect_attempts: reconnection attempts after a loss, when they differ.
        credentials: the identity's credentials file; ``HUB_CREDENTIALS`` when not given.
        tls_ca: the CA certificate of the server's TLS; ``HUB_TLS_CA`` when not given.

    Raises:
        NatsUnavailable: no server answered within ``attempts`` attempts.
        NotAuthorized: a server answered and refused the credentials.
    """
    url = url or os.environ.get("HUB_NATS_URL") or "nats://127.0.0.1:4222"
    options: dict[str, Any] = {}
    holder = None
    if creds := _chosen(credentials, "HUB_CREDENTIALS"):
        try:
            holder = read_credentials(creds)
        except (OSError, ValueError) as exc:
            raise NotAuthorized(url, str(creds), f"{type(exc).__name__}: {exc}") from exc
        options |= {"user_credentials": str(creds), "inbox_prefix": holder.inbox_prefix}
    if ca := _chosen(tls_ca, "HUB_TLS_CA"):
        options["tls"] = ssl.create_default_context(cafile=str(ca))
    refusals: list[str] = []

    async def on_error(exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}"
        if "authorization violation" in text.lower() or "authentication" in text.lower():
            refusals.append(text)
        log.warning("nats.error", extra={"error": text})

    # nats-py can wait for ever on a failed TLS handshake: bound the attempts in time as well
    bound = None if attempts < 0 else (attempts + 1) * (CONNECT_TIMEOUT_S + RETRY_WAIT_S) + 2
    nc = Client()
    try:
        async with asyncio.timeout(bound):
            await _connect(nc, url, name, attempts, on_error, options)
    except (TimeoutError, nats.errors.Error, OSError) as exc:
        await nc.close()  # stops any reconnecting left behind
        if refusals:
            raise NotAuthorized(url, str(creds or "（未提供凭据）"), refusals[-1]) from exc
        detail = f"{type(exc).__name__}: {exc}".rstrip(": ") or type(exc).__name__
        raise NatsUnavailable(url, detail) from exc
    if reconnect_attempts is not None:
        nc.options["max_reconnect_attempts"] = reconnect_attempts  # read at each reconnect
    if holder is not None:
        _IDENTITIES[nc] = holder
    return nc


async def while_unavailable(attempt: Callable[[], Awaitable[T]], what: str) -> T:
    """``attempt()``, tried again while JetStream answers "unavailable" (503).

    Every ``UNAVAILABLE_RETRY_S``, for up to ``UNAVAILABLE_WAIT_S``; ``attempt`` must be safe to
    repeat. ``what``: what was being done, for the log.

    Raises:
        nats.js.errors.ServiceUnavailableError: still unavailable after the wait.
    """
    deadline = asyncio.get_running_loop().time() + UNAVAILABLE_WAIT_S
    refusals = 0
    while True:
        try:
            return await attempt()
        except nats.js.errors.ServiceUnavailableError as exc:
            if asyncio.get_running_loop().time() >= deadline:
                raise
            refusals += 1
            if refusals % UNAVAILABLE_LOG_EVERY == 1:  # the first, then every few seconds
                log.warning(
                    "jetstream.unavailable",
                    extra={"doing": what, "refusals": refusals, "error": exc.description},
                )
            await asyncio.sleep(UNAVAILABLE_RETRY_S)
