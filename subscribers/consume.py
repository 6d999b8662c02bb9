"""Reading a JetStream pull consumer in batches without adding latency.

``fetch(n)`` on an idle consumer holds the first message until the batch fills or the wait ends,
so an idle reader asks for one message (returned the moment it arrives) and switches to whole
batches while the last message says more are pending.
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
ERROR_PAUSE_S = 0.5


async def pull_batches(
    sub: JetStreamContext.PullSubscription, stop: asyncio.Event, *, batch: int = 256
) -> AsyncIterator[list[Msg]]:
    """Yield batches of messages until ``stop`` is set; each batch is in stream order."""
    caught_up = True
    while not stop.is_set():
        try:
            msgs = await _fetch_unless_stopped(sub, 1 if caught_up else batch, stop)
        except TimeoutError:
            caught_up = True
            continue
        except nats.errors.Error as exc:
            # disconnected or the server restarting: the client reconnects on its own
            log.warning("consume.fetch_failed", extra={"error": type(exc).__name__})
            await asyncio.sleep(ERROR_PAUSE_S)
            continue
        if not msgs:
            caught_up = True
            continue
        caught_up = msgs[-1].metadata.num_pending == 0
        yield msgs


async def _fetch_unless_stopped(
    sub: JetStreamContext.PullSubscription, count: int, stop: asyncio.Event
) -> list[Msg]:
    """``sub.fetch(count)``, abandoned as soon as ``stop`` is set (unacked messages come back)."""
    fetching = asyncio.ensure_future(sub.fetch(count, timeout=IDLE_WAIT_S))
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
