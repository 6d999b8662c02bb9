"""Answering an organisation's question "which cases am I in?" (``<root>.cases.<org>``).

Answered from the ledger by the hub process that keeps it; the township dashboard asks it.
"""

from __future__ import annotations

import logging

import orjson
from nats.aio.msg import Msg

from hub.cases.views import case_view
from hub.ledger import Ledger
from hub.registry import Registry
from hub.timeliness import Clock
from schemas.wire import Wire

log = logging.getLogger(__name__)


class CaseAnswers:
    """The handler of case questions."""

    def __init__(self, ledger: Ledger, registry: Registry, wire: Wire, clock: Clock) -> None:
        self.ledger, self.registry, self.wire, self.clock = ledger, registry, wire, clock

    async def answer(self, msg: Msg) -> None:
        """Reply with the asking organisation's cases (``{"open_only": true}`` for open ones)."""
        org = self.wire.org_of(msg.subject)
        asked = orjson.loads(msg.data) if msg.data else {}
        open_only = bool(asked.get("open_only")) if isinstance(asked, dict) else False
        now = self.clock()
        states = await self.ledger.case_states(org=org, open_only=open_only)
        await msg.respond(orjson.dumps([case_view(s, self.registry, now) for s in states]))
