"""Bad input, generated: every message is accepted (and valid) or rejected with reasons and kept.

At least 10,000 inputs per CI run (the Hypothesis profile ``ci``; ``HYPOTHESIS_PROFILE=nightly``
for 100,000; ``HUB_TEST_SEED=N`` replays a run): envelopes and
payloads of every category with random damage, random bytes, other text encodings, deep nesting,
oversized messages, ids and times at their limits. The hub runs on a thread of its own, so that
hypothesis can drive it from this (synchronous) test.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
from collections import Counter
from collections.abc import Coroutine, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import orjson
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from stdnum.cn import uscc

from hub.config import HubSettings
from hub.envelope import load_quarantine, parse_event
from hub.errors import EventRejected
from hub.identity import ADMIN
from hub.identity.sessions import connect_as
from hub.natsd import NatsServer
from hub.registry import Registry
from hub.routing import recipients_for
from hub.samples import PAYLOADS, sample_event
from hub.service import running_hub
from schemas.replies import BATCH_REPLY_ADAPTER, Accepted, Answers, Rejected
from tests.conftest import JETSTREAM_BYTES, UNLIMITED_RATE, credentials_store, run_seed

pytestmark = [pytest.mark.connected, pytest.mark.timeout(900)]

PUBLISHER = "renqiu-scjg"
MAX_BYTES = 16 * 1024
EXAMPLES = settings().max_examples  # of the loaded profile (tests/conftest.py)
T = TypeVar("T")


class BackgroundHub:
    """The hub and a client on an event loop in a thread of their own."""

    def __init__(self, settings: HubSettings, registry: Registry) -> None:
        self.settings, self.registry = settings, registry
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.stack = AsyncExitStack()
        self.nc: Client

    def call(self, work: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def __enter__(self) -> BackgroundHub:
        self.thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self.hub = await self.stack.enter_async_context(running_hub(self.settings, self.registry))
        self.nc = await connect_as(self.settings, PUBLISHER, label="fuzz")
        self.stack.push_async_callback(self.nc.close)

    def __exit__(self, *exc: object) -> None:
        self.call(self.stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def send(self, raw: bytes) -> list[tuple[bytes, Accepted | Rejected]]:
        """Each message the hub judged, as it kept it, with its answer.

        A JSON array is a batch: each of its items is judged (and kept, re-serialized) alone.
        """
        msg = await self.nc.request(self.settings.wire.ingest(PUBLISHER), raw, timeout=10)
        reply = BATCH_REPLY_ADAPTER.validate_json(msg.data)
        if isinstance(reply, Answers):
            items = orjson.loads(raw)
            judged = list(zip((orjson.dumps(i) for i in items), reply.results, strict=True))
        else:
            judged = [(raw, reply)]
        for _, answer in judged:  # "unavailable" would be a failure
            assert isinstance(answer, Accepted | Rejected), answer
        return judged  # type: ignore[return-value]

    async def kept(self, seq: int) -> bytes:
        msg = await self.hub.js.get_msg(self.settings.wire.quarantine_stream, seq)
        return bytes(load_quarantine(msg.subject or "", msg.data or b"", msg.headers)["raw"])

    async def stored(self, seq: int) -> dict[str, Any]:
        msg = await self.hub.js.get_msg(self.settings.wire.events_stream, seq)
        return dict(json.loads(msg.data or b"{}"))


# -- what gets sent ----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
LIMITS = st.sampled_from(
    [
        "", " ", "x" * 200, "x" * 201, "x" * 5001, "中" * 201, "\u0000", "a" * 128, "a" * 129,
        "2025-02-30", "2025-13-01", "0001-01-01", "9999-12-31", "2025-09-30T10:15:00",
        "2025-09-30T10:15:00+14:00", "2025-09-30T10:15:00-12:00", "9999-12-31T23:59:59+00:00",
        "91130982MA0D4XXK3Y", "91130982MA0D4XXK3", "qingxian-jinniu", "renqiu-nowhere", "../x",
        -1, 0, 2**63, 1e308, -0.0, True, [], {}, ["renqiu-chuan", "renqiu-chuan"],
    ]
)  # fmt: skip


def formed_times() -> st.SearchStrategy[datetime]:
    """Well before now (so acceptable) or well after it (so too early): never near the limit."""
    now = datetime.now(UTC)
    past = st.integers(3600, 400 * 86400).map(lambda s: now - timedelta(seconds=s))
    future = st.integers(86400, 900 * 86400).map(lambda s: now + timedelta(seconds=s))
    offset = st.integers(-12 * 60, 14 * 60).map(lambda m: timedelta(minutes=m))
    return st.tuples(past | future, offset).map(lambda p: p[0].astimezone(timezone(p[1])))


@st.composite
def near_the_skew_limit(draw: st.DrawFn) -> datetime:
    """A minute inside or outside the allowed clock skew (300 s ahead of the hub's clock)."""
    ahead = draw(st.sampled_from([240, 360]))
    return datetime.now(UTC) + timedelta(seconds=ahead)  # now at the draw: sent within a second


@st.composite
def damaged_envelopes(draw: st.DrawFn) -> bytes:
    """A valid event of a random category, then up to three random changes."""
    category = draw(st.sampled_from(sorted(PAYLOADS)))
    formed = draw(formed_times() | near_the_skew_limit())
    event = sample_event(category, PUBLISHER, formed, draw(st.integers(0, 10**6)))
    for _ in range(draw(st.integers(0, 3))):
        payload = event.get("data")
        target = payload if isinstance(payload, dict) and draw(st.booleans()) else event
        key = draw(st.sampled_from(sorted(target) or ["id"]) | st.text(min_size=1, max_size=12))
        action = draw(st.sampled_from(["delete", "random", "limit"]))
        if action == "delete":
            target.pop(key, None)
        else:
            # a copy: LIMITS holds shared [] and {} that a later change must not alter (or nest)
            target[key] = copy.deepcopy(draw(JSON_VALUES if action == "random" else LIMITS))
    return json.dumps(event, ensure_ascii=draw(st.booleans()), default=str).encode()


@st.composite
def other_encodings(draw: st.DrawFn) -> bytes:
    """A valid event written in a text encoding other than UTF-8."""
    event = sample_event(draw(st.sampled_from(sorted(PAYLOADS))), PUBLISHER, datetime.now(UTC))
    text = json.dumps(event, ensure_ascii=False)
    return text.encode(
        draw(st.sampled_from(["utf-16", "utf-32", "gb18030", "big5", "latin-1"])), "replace"
    )


def deep_nesting() -> st.SearchStrategy[bytes]:
    opening = st.sampled_from([b"[", b'{"a":', b'{"data":'])
    return st.tuples(opening, st.integers(50, 20_000)).map(
        lambda p: p[0] * p[1] + b"1" + (b"]" if p[0] == b"[" else b"}") * p[1]
    )


def oversized() -> st.SearchStrategy[bytes]:
    return st.integers(MAX_BYTES + 1, MAX_BYTES + 4096).map(
        lambda n: json.dumps({"specversion": "1.0", "id": "x", "padding": "x" * n}).encode()
    )


INPUTS = st.one_of(
    damaged_envelopes(),
    damaged_envelopes(),
    damaged_envelopes(),
    st.binary(max_size=2048),
    other_encodings(),
    deep_nesting(),
    oversized(),
)


# -- the property ------------------------------------------------------------------------------


def acceptable(raw: bytes, registry: Registry) -> bool:
    """What the rules say the hub must do with ``raw`` (sent by the publisher as itself)."""
    if len(raw) > MAX_BYTES:
        return False
    try:
        event = parse_event(raw, now=datetime.now(UTC), clock_skew_s=300)
        if event.source != PUBLISHER:  # the hub checks identity first: unknown ids too
            return False
        recipients_for(event, registry)
    except EventRejected:
        return False
    return True


ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def broken_invariants(stored: dict[str, Any], registry: Registry) -> list[str]:
    """What an accepted event must be, checked without the hub's parser."""
    broken = []
    if stored.get("source") != PUBLISHER:
        broken.append("source is not the publisher")
    if not ID.match(str(stored.get("id"))):
        broken.append("id")
    category = str(stored.get("type", "")).removesuffix(".v1")
    if category not in PAYLOADS or not isinstance(stored.get("data"), dict):
        broken.append("type or data")
    formed = datetime.fromisoformat(str(stored.get("time")))
    if formed.tzinfo is None or formed > datetime.now(UTC) + timedelta(seconds=300):
        broken.append("time without offset or ahead of the clock")
    for key, value in _leaves(stored.get("data")):
        if key.endswith("uscc") and value is not None and not uscc.is_valid(str(value)):
            broken.append(f"{key}: {value}")
    county = registry.org(PUBLISHER).county
    for org in stored.get("recipients") or ():
        if org not in registry or registry.org(org).county != county:
            broken.append(f"recipient {org}")
    return broken


def _leaves(node: object, key: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v, key)
    else:
        yield key, node


@pytest.fixture
def background_hub(
    nats_server: NatsServer, registry: Registry, tmp_path: Any, authority_dir: Any
) -> Iterator[BackgroundHub]:
    fuzz_settings = HubSettings(
        nats_url=nats_server.url,
        data_dir=tmp_path,
        credentials_dir=tmp_path / "credentials",
        jetstream_max_bytes=JETSTREAM_BYTES,
        subject_root="tfuzz",
        max_event_bytes=MAX_BYTES,
        dedup_window_s=600.0,
        web_port=0,
        ingest_rate=UNLIMITED_RATE,  # one publisher sends 10,000 inputs as fast as it can
        ingest_burst=int(UNLIMITED_RATE),
    )
    credentials_store(authority_dir, fuzz_settings, registry)
    with BackgroundHub(fuzz_settings, registry) as hub:
        yield hub
        hub.call(_drop_streams(hub))


async def _drop_streams(hub: BackgroundHub) -> None:
    admin = await connect_as(hub.settings, ADMIN, label="fuzz-cleanup")
    try:
        for stream in hub.settings.wire.streams:
            await admin.jetstream().delete_stream(stream)
    finally:
        await admin.close()


def test_every_generated_input_is_accepted_valid_or_rejected_with_reasons_and_kept(
    background_hub: BackgroundHub, registry: Registry
) -> None:
    outcomes: Counter[str] = Counter()
    accepted_keys: set[tuple[str, str]] = set()  # an id used again with another body conflicts

    @seed(run_seed())
    @given(INPUTS)
    def check(raw: bytes) -> None:
        for judged, reply in background_hub.call(background_hub.send(raw)):
            judge(judged, reply)

    def judge(raw: bytes, reply: Accepted | Rejected) -> None:
        expected = acceptable(raw, registry)
        if isinstance(reply, Accepted):
            assert expected, f"accepted although invalid: {raw[:200]!r}"
            stored = background_hub.call(background_hub.stored(reply.seq))
            assert (stored["source"], stored["id"]) == (reply.source, reply.id)
            assert not broken_invariants(stored, registry), broken_invariants(stored, registry)
            accepted_keys.add((reply.source, reply.id))
            outcomes["accepted"] += 1
        else:
            if [e.rule for e in reply.errors] == ["id_conflict"]:
                envelope = json.loads(raw)
                assert (envelope["source"], envelope["id"]) in accepted_keys, reply.errors
            else:
                assert not expected, f"rejected although valid: {reply.errors}"
            assert reply.errors
            assert all(e.field and e.rule and e.message_zh and e.message_en for e in reply.errors)
            assert background_hub.call(background_hub.kept(reply.quarantine_seq)) == raw
            outcomes["rejected"] += 1

    check()
    # the hub still serves, and both outcomes were exercised many times
    valid = sample_event("other", PUBLISHER, datetime.now(UTC) - timedelta(minutes=1))
    ((_, answer),) = background_hub.call(background_hub.send(json.dumps(valid).encode()))
    assert isinstance(answer, Accepted)
    assert outcomes["accepted"] >= EXAMPLES // 50 and outcomes["rejected"] >= EXAMPLES // 2
    assert sum(outcomes.values()) >= EXAMPLES
