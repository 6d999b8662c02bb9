"""Ingest against a real nats-server: what is accepted is stored once, what is rejected is kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest

from hub.config import HubSettings
from hub.envelope import load_quarantine
from hub.errors import EventRejected
from hub.identity import HUB
from hub.ingest import Ingest
from hub.ingest_endpoint import IngestEndpoint
from hub.metrics import HubMetrics
from hub.replies import INTERNAL_ERROR_ZH
from hub.samples import sample_event
from hub.service import Hub
from schemas.wire import HEADER_ANSWER_ERROR
from subscribers.publisher import Publisher
from tests.conftest import Orgs
from tests.helpers import stream_messages

pytestmark = pytest.mark.connected


async def publisher(orgs: Orgs, hub: Hub, org: str) -> Publisher:
    return await orgs.publisher(org, timeout_s=5.0, retries=0)


async def test_invalid_payload_is_rejected_naming_the_field_and_found_in_quarantine(
    hub: Hub, orgs: Orgs
) -> None:
    event = sample_event("permit", "renqiu-scjg", datetime.now(UTC))
    event["data"]["entity_uscc"] = "91130982MA0D4XXK3Y"
    with pytest.raises(EventRejected) as caught:
        await (await publisher(orgs, hub, "renqiu-scjg")).publish(event)
    (error,) = caught.value.errors
    assert error.field == "data.entity_uscc" and error.rule == "uscc_check_character"

    wire = hub.settings.wire
    kept = await hub.js.get_msg(wire.quarantine_stream, caught.value.quarantine_seq)
    record = load_quarantine(kept.subject or "", kept.data or b"", kept.headers)
    assert kept.subject == wire.quarantine("renqiu-scjg")
    assert orjson.loads(record["raw"])["id"] == event["id"]
    assert record["errors"][0]["field"] == "data.entity_uscc"
    assert await stream_messages(hub.js, wire.events_stream) == 0


async def test_garbage_bytes_are_rejected_and_kept_byte_for_byte(hub: Hub, orgs: Orgs) -> None:
    garbage = b"\x00\xff\xfe{{{ not an event"
    with pytest.raises(EventRejected) as caught:
        await (await publisher(orgs, hub, "renqiu-scjg")).publish(garbage)
    assert caught.value.errors[0].rule == "json_invalid"
    kept = await hub.js.get_msg(hub.settings.wire.quarantine_stream, caught.value.quarantine_seq)
    assert load_quarantine(kept.subject or "", kept.data or b"", kept.headers)["raw"] == garbage


async def test_same_event_id_published_twice_is_stored_once(hub: Hub, orgs: Orgs) -> None:
    event = sample_event("permit", "renqiu-scjg", datetime.now(UTC))
    first = await (await publisher(orgs, hub, "renqiu-scjg")).publish(event)
    second = await (await publisher(orgs, hub, "renqiu-scjg")).publish(event)
    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.seq == first.seq
    assert await stream_messages(hub.js, hub.settings.wire.events_stream) == 1


async def test_same_id_from_two_publishers_is_two_events(hub: Hub, orgs: Orgs) -> None:
    now = datetime.now(UTC)
    a = await (await publisher(orgs, hub, "renqiu-scjg")).publish(
        sample_event("permit", "renqiu-scjg", now, event_id="2025-001")
    )
    b = await (await publisher(orgs, hub, "renqiu-zjj")).publish(
        sample_event("permit", "renqiu-zjj", now, event_id="2025-001")
    )
    assert not a.duplicate and not b.duplicate and a.seq != b.seq


async def test_hub_keeps_serving_after_a_burst_of_bad_input(hub: Hub, orgs: Orgs) -> None:
    pub = await publisher(orgs, hub, "renqiu-scjg")
    for bad in (
        b"",
        b"null",
        b"[]",
        b"{" * 5000,
        '{"id": "\ud800"}'.encode("utf-8", "surrogatepass"),
    ):
        with pytest.raises(EventRejected):
            await pub.publish(bad)
    accepted = await pub.publish(sample_event("other", "renqiu-scjg", datetime.now(UTC)))
    assert accepted.seq == 1
    assert await stream_messages(hub.js, hub.settings.wire.quarantine_stream) == 5


async def test_accepted_reply_comes_after_the_event_is_in_the_stream(hub: Hub, orgs: Orgs) -> None:
    accepted = await (await publisher(orgs, hub, "renqiu-chuan")).publish(
        sample_event("statistics", "renqiu-chuan", datetime.now(UTC))
    )
    stored = await hub.js.get_msg(hub.settings.wire.events_stream, accepted.seq)
    assert orjson.loads(stored.data or b"")["id"] == accepted.id
    assert stored.headers is not None
    assert stored.headers["Hub-Recipients"].split(",") == list(accepted.recipients)


class BrokenIngest(Ingest):
    """An ingest whose first answer fails inside the hub (a fault injected for the test)."""

    def __init__(self) -> None:
        self.calls = 0

    async def answer(self, subject: str, data: bytes) -> bytes:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("a fault inside the hub")
        return b"answered"


async def test_an_internal_failure_is_answered_and_the_endpoint_keeps_serving(
    settings: HubSettings, orgs: Orgs
) -> None:
    ingest = BrokenIngest()
    hub_nc = await orgs.nc(HUB)
    endpoint = IngestEndpoint(hub_nc, settings.wire, ingest, HubMetrics())
    await endpoint.open()
    try:
        publisher_nc = await orgs.nc("renqiu-scjg")
        subject = settings.wire.ingest("renqiu-scjg")
        failed = await publisher_nc.request(subject, b"{}", timeout=5)
        assert json.loads((failed.headers or {})[HEADER_ANSWER_ERROR]) == INTERNAL_ERROR_ZH
        answered = await publisher_nc.request(subject, b"{}", timeout=5)
        assert answered.data == b"answered" and not answered.headers
    finally:
        await endpoint.close()
    assert ingest.calls == 2
