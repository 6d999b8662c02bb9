"""Reading a JetStream pull consumer in batches without adding much latency.

``fetch(n)`` returns at once with what is pending, but on an empty consumer it holds the first
message until the batch fills or the wait ends. So an idle reader asks for one message (returned the
moment it arrives); once traffic flows it asks for whole batches with a short wait (``LINGER_S``),
which under load returns full batches at once and adds at most the linger when traffic is light;
a batch request that finds nothing sends the reader back to idle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

log = logging.getLogger(__name__)

IDLE_WAIT_S = 1.0  # how long one pull request waits on an idle consumer before it is renewed
READER_IDLE_WAIT_S = 5.0
"""The same for an organisation's reader: a province has thousands, each renewal is a request to
the server (at 1 s, 2,000 idle readers cost nats-server about 0.17 of a core on 2 cores). Messages
still arrive the moment they are stored; only a reader whose request the server lost (a restart)
waits up to this long to ask again."""
LINGER_S = 0.02  # how long a batch request waits for more while traffic flows
ERROR_PAUSE_S = 0.5


async def pull_batches(
    sub: JetStreamContext.PullSubscription,
    stop: asyncio.Event,
    *,
    batch: int = 256,
    idle_wait_s: float = IDLE_WAIT_S,
) -> AsyncIterator[list[Msg]]:
    """Yield batches of messages until ``stop`` is set; each batch is in stream order.

    ``idle_wait_s``: how long a pull request waits on an idle consumer before it is renewed.
    """
    idle = True
    while not stop.is_set():
        try:
            if idle:
                msgs = await _fetch_unless_stopped(sub, 1, stop, idle_wait_s)
            else:
                msgs = await sub.fetch(batch, timeout=LINGER_S)
        except TimeoutError:
            idle = True
            continue
        except nats.errors.Error as exc:
            # disconnected or the server restarting: the client reconnects on its own
            log.warning("consume.fetch_failed", extra={"error": type(exc).__name__})
            await asyncio.sleep(ERROR_PAUSE_S)
            continue
        idle = not msgs
        if msgs:
            yield msgs


async def _fetch_unless_stopped(
    sub: JetStreamContext.PullSubscription, count: int, stop: asyncio.Event, wait_s: float
) -> list[Msg]:
    """``sub.fetch(count)``, abandoned as soon as ``stop`` is set (unacked messages come back)."""
    fetching = asyncio.ensure_future(sub.fetch(count, timeout=wait_s))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((fetching, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not fetching.done():
        fetching.cancel()
        fetching.add_done_callback(_log_abandoned)
        return []
    return fetching.result()


def _log_abandoned(task: asyncio.Future[list[Msg]]) -> None:
    """Collect the outcome of a fetch abandoned at stop (its messages are redelivered)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.debug("consume.abandoned_fetch", extra={"error": type(exc).__name__})
