"""Abuse from a legitimate organisation: a flood of garbage, and an id reused for another event."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime

import nats.errors
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.config import HubSettings
from hub.registry import Registry
from hub.samples import sample_event
from hub.service import Hub
from schemas.replies import REPLY_ADAPTER, Accepted
from subscribers.errors import EventRejected
from tests.conftest import Orgs, hub_running
from tests.helpers import eventually, receiving, scrape

pytestmark = [pytest.mark.connected, pytest.mark.timeout(300)]

FLOODER, HONEST, RECIPIENT = "renqiu-chuan", "renqiu-scjg", "renqiu-zjj"
FLOOD, VALID, KEPT = 10_000, 100, 200


async def test_one_organisations_flood_of_garbage_does_not_starve_the_others(
    settings: HubSettings, registry: Registry, orgs: Orgs
) -> None:
    limited = settings.model_copy(
        update={"ingest_rate": 50.0, "ingest_burst": 100, "quarantine_per_org": KEPT}
    )
    answers: Counter[str] = Counter()
    flooder = await orgs.nc(FLOODER)

    async def garbage(n: int) -> None:
        try:
            reply = await flooder.request(limited.wire.ingest(FLOODER), b"{not json %d" % n, 30)
        except nats.errors.TimeoutError:
            answers["unanswered"] += 1
            return
        answers[REPLY_ADAPTER.validate_json(reply.data).status] += 1

    async def flood() -> None:
        for start in range(0, FLOOD, 500):
            await asyncio.gather(*(garbage(n) for n in range(start, start + 500)))

    async def honest() -> list[str]:
        publisher = await orgs.publisher(HONEST)
        keys = []
        for n in range(VALID):
            event = sample_event("other", HONEST, datetime.now(UTC), n, recipients=(RECIPIENT,))
            keys.append(f"{HONEST}/{(await publisher.publish(event)).id}")
        return keys

    async with hub_running(limited, registry) as hub:
        async with receiving(limited, [RECIPIENT]) as inboxes, asyncio.TaskGroup() as tasks:
            flooding = tasks.create_task(flood())
            keys = await honest()  # while the flood goes on
            await eventually(lambda: len(inboxes[RECIPIENT].keys) == VALID, within=60)
            await flooding
        subject = limited.wire.quarantine(FLOODER)
        quarantine = await hub.js.stream_info(limited.wire.quarantine_stream, subject)
        metrics = (await scrape(hub)).text
    assert inboxes[RECIPIENT].keys == keys  # every valid event accepted and delivered, in order
    assert answers["unanswered"] == 0 and sum(answers.values()) == FLOOD  # every one answered
    assert answers["unavailable"] > 0 and answers["rejected"] > 0
    assert 0 < (quarantine.state.subjects or {})[subject] <= KEPT  # bounded in the quarantine
    counted = _sum(metrics, "hub_throttled_total", FLOODER) + _rejected(metrics, FLOODER)
    assert counted == FLOOD  # and counted


def _sum(text: str, name: str, publisher: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and sample.labels.get("publisher") == publisher
    )


def _rejected(text: str, publisher: str) -> float:
    # one garbage message breaks one rule (json_invalid): messages = rule counts here
    return _sum(text, "hub_rejected_total", publisher)


async def test_an_id_sent_again_with_another_body_is_refused_naming_the_stored_event(
    hub: Hub, orgs: Orgs
) -> None:
    publisher = await orgs.publisher(HONEST)
    event = sample_event("permit", HONEST, datetime.now(UTC), event_id="permit-2026-001")
    first = await publisher.publish(event)
    again = await publisher.publish(event)  # a resend: harmless
    changed = json.loads(json.dumps(event))
    changed["data"]["entity_name"] = "任丘市另一家公司"
    with pytest.raises(EventRejected) as refused:
        await publisher.publish(changed)
    (error,) = refused.value.errors
    stored = await hub.js.get_msg(hub.settings.wire.events_stream, first.seq)
    assert isinstance(first, Accepted) and again.duplicate and again.seq == first.seq
    assert (error.field, error.rule) == ("id", "id_conflict")
    assert f"事件流序号 {first.seq}" in error.message_zh
    assert json.loads(stored.data or b"{}")["data"]["entity_name"] == event["data"]["entity_name"]
