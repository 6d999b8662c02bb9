"""Bulk publishing: one request carrying many events, each answered on its own."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from hub.ledger import DeliveryState
from hub.samples import sample_event
from hub.service import Hub
from schemas.replies import BATCH_REPLY_ADAPTER, Accepted, Rejected
from tests.conftest import Orgs
from tests.helpers import PUBLISHER, RECIPIENT, eventually, receiving

pytestmark = [pytest.mark.connected, pytest.mark.timeout(120)]


async def test_a_day_of_records_in_batches_each_answered_stored_and_delivered_in_order(
    hub: Hub, orgs: Orgs
) -> None:
    now = datetime.now(UTC)
    sent = [sample_event("other", PUBLISHER, now, n, recipients=(RECIPIENT,)) for n in range(60)]
    for bad in (7, 30, 59):  # three broken ones among them
        sent[bad]["data"] = {"title": ""}
    publisher = await orgs.publisher(PUBLISHER)
    answers = await publisher.publish_many(sent, batch=25)  # three requests
    assert len(answers) == 60
    accepted = [a for a in answers if isinstance(a, Accepted)]
    rejected = {n: a for n, a in enumerate(answers) if isinstance(a, Rejected)}
    assert set(rejected) == {7, 30, 59}
    for answer in rejected.values():
        assert answer.quarantine_seq >= 1  # kept
        assert all(e.field.startswith("data") and e.message_zh for e in answer.errors)
    assert [a.id for a in accepted] == [e["id"] for n, e in enumerate(sent) if n not in rejected]
    assert [a.seq for a in accepted] == sorted(a.seq for a in accepted)  # stored in order
    assert not any(a.duplicate for a in accepted)
    async with receiving(hub.settings, [RECIPIENT]) as inboxes:
        await eventually(lambda: len(inboxes[RECIPIENT].events) == 57, within=30)
        assert [e.id for e, _ in inboxes[RECIPIENT].events] == [a.id for a in accepted]

    async def acknowledged() -> bool:
        return (await hub.ledger.counts()).get(DeliveryState.ACKNOWLEDGED, 0) == 57

    await eventually(acknowledged, within=15)
    # sent again (an upload retried): the same answers, nothing stored twice
    again = await publisher.publish_many(sent)
    assert [a.seq for a in again if isinstance(a, Accepted)] == [a.seq for a in accepted]
    assert all(a.duplicate for a in again if isinstance(a, Accepted))
    info = await hub.js.stream_info(hub.settings.wire.events_stream)
    assert info.state.messages == 57


async def test_a_batch_over_the_limit_is_refused_whole_with_a_clear_reason(
    hub: Hub, orgs: Orgs
) -> None:
    limit = hub.settings.max_batch_events
    now = datetime.now(UTC)
    events = [sample_event("other", PUBLISHER, now, n) for n in range(limit + 1)]
    nc = await orgs.nc(PUBLISHER)
    msg = await nc.request(hub.settings.wire.ingest(PUBLISHER), orjson.dumps(events), timeout=30)
    reply = BATCH_REPLY_ADAPTER.validate_json(msg.data)
    assert isinstance(reply, Rejected)
    (error,) = reply.errors
    assert error.rule == "batch_too_large" and f"最多发布 {limit} 条" in error.message_zh
    # an array holding something that is not an event: that one rejected, the rest answered
    msg = await nc.request(
        hub.settings.wire.ingest(PUBLISHER), orjson.dumps([events[0], 5, "x"]), timeout=30
    )
    answers = BATCH_REPLY_ADAPTER.validate_json(msg.data)
    assert [r.status for r in answers.results] == ["accepted", "rejected", "rejected"]  # type: ignore[union-attr]
    info = await hub.js.stream_info(hub.settings.wire.events_stream)
    assert info.state.messages == 1
