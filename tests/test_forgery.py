"""What another identity writes into the hub's streams never counts as the hub's or an org's.

The attacker here holds the admin credential (the strongest one: it may publish anywhere and the
server lets it); everything it writes is refused by the SDK, the fan-out or the ledger.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from hub.audit import trust as record_trust
from hub.envelope import Item, dump_bundle
from hub.identity import ADMIN, org_credentials_path
from hub.registry import Registry
from hub.samples import sample_event
from hub.service import Hub
from schemas.envelope import Event
from schemas.receipt import Receipt, ReceiptBatch
from schemas.shanghai import shanghai_day
from schemas.wire import HEADER_MSG_ID, HEADER_PUBLISHED_AT, HEADER_RECIPIENTS, HEADER_SIGNATURE
from subscribers import signing
from subscribers.credentials import seed_of
from subscribers.recipient import Delivery, Recipient
from subscribers.signing import NkeySigner, signing_input
from tests.conftest import Orgs
from tests.helpers import eventually, receipt_count, scrape, trust_of_hub

pytestmark = pytest.mark.connected

TOWNSHIP, DEPARTMENT = "renqiu-chuan", "renqiu-scjg"


def forged_event(n: int) -> bytes:
    event = sample_event("other", DEPARTMENT, datetime.now(UTC) - timedelta(minutes=1), n)
    event["id"] = f"forged-{n}"
    return json.dumps(event, ensure_ascii=False).encode()


async def test_a_bundle_not_signed_by_the_hub_never_reaches_a_handler(hub: Hub, orgs: Orgs) -> None:
    wire = hub.settings.wire
    admin = await orgs.nc(ADMIN)
    js = admin.jetstream()
    now = datetime.now(UTC).isoformat()
    forged = dump_bundle(TOWNSHIP, [Item(1, f"{DEPARTMENT}/forged-1", now, False, forged_event(1))])
    # 1: unsigned, straight into the township's deliveries
    await js.publish(wire.deliver(TOWNSHIP), forged, headers={HEADER_MSG_ID: "forged-1"})
    # 2: a genuine bundle of another township, moved to this one's subject
    other = "renqiu-shimenqiao"
    publisher = await orgs.publisher(DEPARTMENT)
    genuine = sample_event("other", DEPARTMENT, datetime.now(UTC), 7, recipients=(other,))
    await publisher.publish(genuine)

    async def one_bundle_for_other() -> bool:
        info = await hub.js.consumer_info(wire.deliveries_stream, wire.delivery_consumer(other))
        return bool(info.num_pending == 1)

    await eventually(one_bundle_for_other, within=10)
    stored = await hub.js.get_last_msg(wire.deliveries_stream, wire.deliver(other))
    # (a new de-duplication id: the stream would drop a second message with the same one)
    headers = dict(stored.headers or {}) | {HEADER_MSG_ID: "moved-1"}
    await js.publish(wire.deliver(TOWNSHIP), stored.data or b"", headers=headers)
    # 3: a genuine-looking bundle with the signature kept and one byte of the body changed
    changed = bytearray(stored.data or b"")
    changed[changed.index(b"renqiu-shimenqiao")] ^= 0x01
    await js.publish(
        wire.deliver(TOWNSHIP), bytes(changed), headers=headers | {HEADER_MSG_ID: "changed-1"}
    )

    handled: list[Event] = []

    async def handle(event: Event, delivery: Delivery) -> None:
        handled.append(event)

    recipient = Recipient(await orgs.nc(TOWNSHIP), TOWNSHIP, wire=wire)
    stop = asyncio.Event()
    task = asyncio.create_task(recipient.run(handle, stop))
    try:
        real = await publisher.publish(
            sample_event("other", DEPARTMENT, datetime.now(UTC), 8, recipients=(TOWNSHIP,))
        )
        await eventually(lambda: len(handled) == 1 and recipient.forged == 3, within=10)
    finally:
        stop.set()
        await task
    assert [e.key for e in handled] == [f"{real.source}/{real.id}"]
    info = await hub.js.consumer_info(wire.deliveries_stream, wire.delivery_consumer(TOWNSHIP))
    assert info.num_ack_pending == 0 and info.num_pending == 0  # the forgeries were dropped
    # the hub hears of each refusal (JetStream's advisory) and shows it to ops
    await eventually(lambda: hub.audit.state.refused.get(TOWNSHIP) == 3, within=10)
    assert 'hub_bundles_refused{recipient="renqiu-chuan"} 3.0' in (await scrape(hub)).text


async def test_a_receipt_written_by_anyone_but_the_recipient_does_not_count(
    hub: Hub, orgs: Orgs, registry: Registry
) -> None:
    wire = hub.settings.wire
    accepted = await (await orgs.publisher(DEPARTMENT)).publish(
        sample_event("other", DEPARTMENT, datetime.now(UTC), 1, recipients=(TOWNSHIP,))
    )
    key = f"{accepted.source}/{accepted.id}"

    async def recorded() -> bool:
        rows = await hub.ledger.pairs(day_from=_today(), day_to=_today())
        return any(r.event_key == key for r in rows)

    await eventually(recorded, within=10)
    subject, body = wire.receipts(TOWNSHIP), acknowledging_batch(accepted.source, accepted.id)
    js = (await orgs.nc(ADMIN)).jetstream()
    await js.publish(subject, body)  # unsigned
    another = NkeySigner(seed_of(org_credentials_path(hub.settings, "renqiu-shimenqiao")))
    wrong = another.sign(signing_input(subject, "", body))  # signed, by another organisation
    await js.publish(subject, body, headers={HEADER_SIGNATURE: wrong})
    assert await receipt_count(hub.js, hub.settings) == 2  # both stored: the server let admin in

    async def receipts_read() -> bool:
        info = await hub.js.consumer_info(wire.receipts_stream, wire.ledger_consumer)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(receipts_read, within=10)
    [row] = [
        r for r in await hub.ledger.pairs(day_from=_today(), day_to=_today()) if r.event_key == key
    ]
    assert row.state == "pending" and row.acknowledged_at is None
    # the township's own signed receipt does count
    mine = NkeySigner(seed_of(org_credentials_path(hub.settings, TOWNSHIP)))
    await js.publish(
        subject, body, headers={HEADER_SIGNATURE: mine.sign(signing_input(subject, "", body))}
    )

    async def acknowledged() -> bool:
        rows = await hub.ledger.pairs(day_from=_today(), day_to=_today())
        return any(r.event_key == key and r.state == "acknowledged" for r in rows)

    await eventually(acknowledged, within=10)


async def test_an_event_written_into_the_events_stream_by_another_identity_goes_nowhere(
    hub: Hub, orgs: Orgs
) -> None:
    wire = hub.settings.wire
    js = (await orgs.nc(ADMIN)).jetstream()
    headers = {
        HEADER_MSG_ID: f"{DEPARTMENT}/forged-9",
        HEADER_PUBLISHED_AT: datetime.now(UTC).isoformat(),
        HEADER_RECIPIENTS: TOWNSHIP,
    }
    await js.publish(wire.event(DEPARTMENT, "other"), forged_event(9), headers=headers)
    real = await (await orgs.publisher(DEPARTMENT)).publish(
        sample_event("other", DEPARTMENT, datetime.now(UTC), 2, recipients=(TOWNSHIP,))
    )

    async def fanned_out() -> bool:
        info = await hub.js.consumer_info(wire.events_stream, wire.fanout_consumer)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(fanned_out, within=10)
    info = await hub.js.consumer_info(wire.deliveries_stream, wire.delivery_consumer(TOWNSHIP))
    assert info.num_pending == 1  # the real event's bundle only

    async def ledger_read() -> bool:
        info = await hub.js.consumer_info(wire.events_stream, wire.ledger_consumer)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(ledger_read, within=10)
    keys = {r.event_key for r in await hub.ledger.pairs(day_from=_today(), day_to=_today())}
    assert keys == {f"{real.source}/{real.id}"}


async def test_a_receipt_signature_checked_once_vouches_for_those_bytes_alone(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The projection and the checkpoints both ask who wrote a receipt batch: the second answer
    comes from memory, and a genuine signature moved onto other bytes or another subject still
    fails."""
    wire, trust = hub.settings.wire, trust_of_hub(hub)
    checked = []

    def counting(public: str, data: bytes, signature: str) -> bool:
        checked.append(data)
        return signing.verify(public, data, signature)

    monkeypatch.setattr(record_trust, "verify", counting)
    subject, body = wire.receipts(TOWNSHIP), acknowledging_batch(DEPARTMENT, "memo-1")
    mine = NkeySigner(seed_of(org_credentials_path(hub.settings, TOWNSHIP)))
    signed = {HEADER_SIGNATURE: mine.sign(signing_input(subject, "", body))}

    assert trust.receipt_writer(subject, signed, body) == TOWNSHIP
    checks = len(checked)
    assert checks >= 1
    assert trust.receipt_writer(subject, signed, body) == TOWNSHIP
    assert len(checked) == checks  # remembered: not checked again
    other_bytes = body.replace(b"memo-1", b"memo-2")
    assert trust.receipt_writer(subject, signed, other_bytes) is None
    other_org = wire.receipts("renqiu-shimenqiao")
    assert trust.receipt_writer(other_org, signed, body) is None
    assert len(checked) > checks  # both were checked, not answered from memory


def acknowledging_batch(source: str, event_id: str) -> bytes:
    """A receipt batch of the township acknowledging one event, as its SDK would write it."""
    now = datetime.now(UTC)
    receipt = Receipt(
        event_source=source,
        event_id=event_id,
        recipient=TOWNSHIP,
        status="acknowledged",
        delivery_seq=1,
        deliveries=1,
        received_at=now,
        finished_at=now,
        agent="test",
    )
    return ReceiptBatch(recipient=TOWNSHIP, receipts=(receipt,)).model_dump_json().encode()


def _today() -> date:
    return shanghai_day(datetime.now(UTC))
