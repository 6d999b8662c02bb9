"""The ingest handler with an in-memory store; tests/test_ingest.py uses a real server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from hub.config import HubSettings
from hub.ingest import Ingest, StoreUnavailable
from hub.registry import Registry
from hub.samples import sample_event
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

    async def stored(self, seq: int) -> bytes:
        return list(self.events.values())[seq - 1][1]


@pytest.fixture
def memory_settings() -> HubSettings:
    return HubSettings(nats_url="nats://in-memory:4222", max_event_bytes=4096)


async def ask(
    settings: HubSettings, registry: Registry, store: MemoryStore, org: str, body: bytes
) -> IngestReply:
    ingest = Ingest(settings, registry, store, clock=lambda: NOW)
    return REPLY_ADAPTER.validate_json(await ingest.answer(settings.wire.ingest(org), body))


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


async def test_a_publisher_over_its_rate_is_told_when_to_send_again_and_nothing_is_stored(
    registry: Registry,
) -> None:
    slow = HubSettings(nats_url="nats://in-memory:4222", ingest_rate=0.5, ingest_burst=2)
    store = MemoryStore()
    ingest = Ingest(slow, registry, store, clock=lambda: NOW)
    replies = []
    for n in range(3):
        body = event_bytes(event_id=f"rate-{n}")
        answer = await ingest.answer(slow.wire.ingest("renqiu-scjg"), body)
        replies.append(REPLY_ADAPTER.validate_json(answer))
    other = await ingest.answer(slow.wire.ingest("renqiu-zjj"), event_bytes(source="renqiu-zjj"))
    assert [type(r) for r in replies] == [Accepted, Accepted, Unavailable]
    throttled = replies[2]
    assert isinstance(throttled, Unavailable) and throttled.retry_after_s is not None
    assert 0 < throttled.retry_after_s <= 2.0  # one token every 2 s
    stored = [key for key in store.events if key.startswith("renqiu-scjg/")]
    assert stored == ["renqiu-scjg/rate-0", "renqiu-scjg/rate-1"]
    assert not store.quarantined  # turned away unread
    assert isinstance(REPLY_ADAPTER.validate_json(other), Accepted)  # others unaffected


async def test_an_id_sent_again_with_another_body_is_an_id_conflict(
    memory_settings: HubSettings, registry: Registry
) -> None:
    store = MemoryStore()
    first = await ask(memory_settings, registry, store, "renqiu-scjg", event_bytes(event_id="e1"))
    same = await ask(memory_settings, registry, store, "renqiu-scjg", event_bytes(event_id="e1"))
    changed = orjson.loads(event_bytes(event_id="e1"))
    changed["data"]["entity_name"] = "另一家公司"
    other = await ask(memory_settings, registry, store, "renqiu-scjg", orjson.dumps(changed))
    assert isinstance(first, Accepted) and isinstance(same, Accepted) and same.duplicate
    assert isinstance(other, Rejected)
    (error,) = other.errors
    assert (error.field, error.rule) == ("id", "id_conflict")
    assert "事件流序号 1" in error.message_zh and other.quarantine_seq == 1


async def test_an_array_too_deep_to_write_out_again_is_rejected_whole_and_kept(
    memory_settings: HubSettings, registry: Registry
) -> None:
    store = MemoryStore()
    deep = b"[" * 300 + b"]" * 300  # readable, but deeper than orjson writes
    reply = await ask(memory_settings, registry, store, "renqiu-scjg", deep)
    assert isinstance(reply, Rejected) and reply.errors
    assert store.quarantined[0][1] == deep  # kept as received
    assert not store.events
