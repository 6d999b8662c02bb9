"""The ingest handler in memory (TestNatsBroker); tests/test_ingest.py uses a real server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from faststream.nats import TestNatsBroker

from hub.config import HubSettings
from hub.ingest import Ingest, StoreUnavailable
from hub.registry import Registry
from hub.samples import sample_event
from hub.service import new_broker, register_ingest
from schemas.replies import REPLY_ADAPTER, Accepted, FieldError, IngestReply, Rejected, Unavailable

NOW = datetime(2025, 9, 30, 2, 15, tzinfo=UTC)


class MemoryStore:
    def __init__(self, *, failing: bool = False) -> None:
        self.events: dict[str, tuple[str, bytes, dict[str, str]]] = {}
        self.quarantined: list[tuple[str, bytes, tuple[FieldError, ...]]] = []
        self.failing = failing

    async def store(self, subject: str, body: bytes, headers: dict[str, str]) -> tuple[int, bool]:
        if self.failing:
            raise StoreUnavailable("TimeoutError")
        key = headers["Nats-Msg-Id"]
        if key in self.events:
            return list(self.events).index(key) + 1, True
        self.events[key] = (subject, body, headers)
        return len(self.events), False

    async def quarantine(self, subject: str, raw: bytes, errors: tuple[FieldError, ...]) -> int:
        if self.failing:
            raise StoreUnavailable("TimeoutError")
        self.quarantined.append((subject, raw, errors))
        return len(self.quarantined)


@pytest.fixture
def memory_settings() -> HubSettings:
    return HubSettings(nats_url="nats://in-memory:4222", max_event_bytes=4096)


async def ask(
    settings: HubSettings, registry: Registry, store: MemoryStore, org: str, body: bytes
) -> IngestReply:
    broker = new_broker(settings)
    register_ingest(broker, settings, Ingest(settings, registry, store, clock=lambda: NOW))
    async with TestNatsBroker(broker) as test_broker:
        response = await test_broker.request(body, settings.wire.ingest(org))
        return REPLY_ADAPTER.validate_json(response.body)


def event_bytes(category: str = "permit", source: str = "renqiu-scjg", **envelope: Any) -> bytes:
    return orjson.dumps(sample_event(category, source, NOW, **envelope))


async def test_valid_event_is_accepted_with_its_recipients(
    memory_settings: HubSettings, registry: Registry
) -> None:
    store = MemoryStore()
    reply = await ask(memory_settings, registry, store, "renqiu-scjg", event_bytes())
    assert isinstance(reply, Accepted)
    assert (reply.seq, reply.duplicate, len(reply.recipients)) == (1, False, 19)
    ((subject, _, headers),) = store.events.values()
    assert subject == "hub.events.renqiu-scjg.permit"
    assert headers["Hub-Recipients"].split(",") == list(reply.recipients)


async def test_publishing_as_another_organisation_is_rejected(
    memory_settings: HubSettings, registry: Registry
) -> None:
    store = MemoryStore()
    reply = await ask(
        memory_settings, registry, store, "renqiu-chuan", event_bytes(source="renqiu-scjg")
    )
    assert isinstance(reply, Rejected)
    assert [(e.field, e.rule) for e in reply.errors] == [("source", "source_mismatch")]
    assert "只能以本单位名义发布" in reply.errors[0].message_zh
    assert store.events == {} and len(store.quarantined) == 1


async def test_unregistered_publisher_is_rejected(
    memory_settings: HubSettings, registry: Registry
) -> None:
    store = MemoryStore()
    reply = await ask(
        memory_settings, registry, store, "renqiu-ghost", event_bytes(source="renqiu-ghost")
    )
    assert isinstance(reply, Rejected) and reply.errors[0].rule == "unknown_publisher"
    assert store.quarantined[0][0] == "hub.quarantine.renqiu-ghost"


async def test_identity_and_schema_errors_are_reported_together(
    memory_settings: HubSettings, registry: Registry
) -> None:
    event = sample_event("permit", "renqiu-scjg", NOW)
    event["data"]["entity_uscc"] = "91130982MA0D4XXK3Y"
    reply = await ask(memory_settings, registry, MemoryStore(), "renqiu-chuan", orjson.dumps(event))
    assert isinstance(reply, Rejected)
    assert {e.rule for e in reply.errors} == {"source_mismatch", "uscc_check_character"}
    assert reply.id == event["id"]


async def test_oversized_message_is_rejected_and_kept(
    memory_settings: HubSettings, registry: Registry
) -> None:
    store = MemoryStore()
    big = b"x" * 5000
    reply = await ask(memory_settings, registry, store, "renqiu-scjg", big)
    assert isinstance(reply, Rejected) and reply.errors[0].rule == "too_large"
    assert store.quarantined[0][1] == big


async def test_store_failure_answers_unavailable_not_accepted(
    memory_settings: HubSettings, registry: Registry
) -> None:
    reply = await ask(
        memory_settings, registry, MemoryStore(failing=True), "renqiu-scjg", event_bytes()
    )
    assert isinstance(reply, Unavailable) and "TimeoutError" in reply.reason


async def test_bad_event_is_not_answered_rejected_until_the_quarantine_keeps_it(
    memory_settings: HubSettings, registry: Registry
) -> None:
    store = MemoryStore(failing=True)
    reply = await ask(memory_settings, registry, store, "renqiu-scjg", b"not json")
    assert isinstance(reply, Unavailable)
    assert "json_invalid" in reply.reason and "send it again" in reply.reason
    store.failing = False
    reply = await ask(memory_settings, registry, store, "renqiu-scjg", b"not json")
    assert isinstance(reply, Rejected) and reply.quarantine_seq == 1
    assert store.quarantined[0][1] == b"not json"
