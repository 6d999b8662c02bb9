"""The cost of each operation of the signed record (µs), through the functions the hub calls.

One permit event (the benchmarks' ``permit.v1`` envelope) in a bundle for one recipient, and one
receipt in a receipt batch: the sizes of a quiet hub, where each delivery is a bundle of its own.
Each figure is the median of many timed rounds; SM2 and SM3 (pure Python ``gmssl``, milliseconds
each) get fewer.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import nkeys
import orjson
from nats.aio.msg import Msg

from bench.suite import PUBLISHER, county_recipients
from hub.audit import keys as record_keys
from hub.audit.messages import message_digest
from hub.audit.trust import RecordTrust
from hub.envelope import Item, dump_bundle
from hub.samples import sample_event
from schemas.receipt import Receipt, ReceiptBatch
from schemas.wire import HEADER_MSG_ID, HEADER_SIGNATURE, Wire
from subscribers.recipient import signed_by_hub
from subscribers.signing import NkeySigner, signing_input

COSTS = {  # key: what the table calls it
    "bundle_sign": "hub signs a bundle (Ed25519, nkeys)",
    "bundle_verify": "SDK checks a bundle's signature (Ed25519, PyNaCl)",
    "receipt_sign": "SDK signs a receipt batch (Ed25519, nkeys)",
    "receipt_check": "hub checks a receipt batch: seal, then signature (Ed25519, PyNaCl)",
    "seal": "hub seals a stored event (HMAC-SHA-256)",
    "seal_check": "hub checks an event's seal (HMAC-SHA-256)",
    "digest": "checkpoint digest of one stored message (SHA-256)",
    "sm2_bundle_sign": "hub signs a bundle, sm2-sm3 suite (SM2, gmssl)",
    "sm2_bundle_verify": "SDK checks a bundle's signature, sm2-sm3 suite (SM2, gmssl)",
    "sm3_seal": "hub seals a stored event, sm2-sm3 suite (HMAC-SM3, gmssl)",
    "sm3_digest": "checkpoint digest of one stored message, sm2-sm3 suite (SM3, gmssl)",
}
SLOW = ("sm2_bundle_sign", "sm2_bundle_verify", "sm3_seal", "sm3_digest")  # ms each: fewer rounds


def per_op_us(op: Callable[[], object], rounds: int, each: int) -> float:
    """Median over ``rounds`` of the mean µs of ``each`` calls of ``op``."""
    means = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(each):
            op()
        means.append((time.perf_counter_ns() - started) / each / 1000)
    return statistics.median(means)


def _trust(store: Path, suite: str, wire: Wire) -> RecordTrust:
    record_keys.ensure(store, suite)
    return RecordTrust(record_keys.load(store), wire, authority=None)


def operations(folder: Path) -> dict[str, Callable[[], object]]:
    """Each operation of ``COSTS``, ready to call, on realistic messages."""
    wire, recipient, now = Wire(), county_recipients()[0], datetime.now(UTC)
    ed, sm2 = (
        _trust(folder / "ed25519", "ed25519-sha256", wire),
        _trust(folder / "sm2", "sm2-sm3", wire),
    )
    event = sample_event("permit", PUBLISHER, now, 0, recipients=(recipient,))
    body, key = orjson.dumps(event), f"{PUBLISHER}/{event['id']}"
    stored_at, event_subject = now.isoformat(), wire.event(PUBLISHER, "permit")
    event_headers = {HEADER_MSG_ID: key}
    sealed = ed.seal(event_subject, event_headers, body)
    bundle = dump_bundle(recipient, [Item(1, key, stored_at, False, body)])
    subject, msg_id = wire.deliver(recipient), wire.bundle_msg_id(1, 1, 0, recipient)

    def delivered(trust: RecordTrust) -> Msg:
        headers = trust.bundle_headers(subject, msg_id, bundle)
        return Msg(cast(Any, None), subject=subject, data=bundle, headers=headers)

    ed_msg, sm2_msg = delivered(ed), delivered(sm2)
    org = NkeySigner(bytes(nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)))
    ed.org_keys = {recipient: frozenset({org.public.partition(":")[2]})}
    receipt = Receipt(
        event_source=PUBLISHER,
        event_id=event["id"],
        recipient=recipient,
        status="acknowledged",
        delivery_seq=1,
        deliveries=1,
        received_at=now,
        finished_at=now,
        agent="subscribers/bench",
    )
    batch = ReceiptBatch(recipient=recipient, receipts=(receipt,)).model_dump_json().encode()
    receipts = wire.receipts(recipient)
    signed = {HEADER_SIGNATURE: org.sign(signing_input(receipts, "", batch))}
    return {
        "bundle_sign": lambda: ed.bundle_headers(subject, msg_id, bundle),
        "bundle_verify": lambda: signed_by_hub(ed.keys.public, ed_msg),
        "receipt_sign": lambda: org.sign(signing_input(receipts, "", batch)),
        "receipt_check": lambda: ed.receipt_writer(receipts, signed, batch),
        "seal": lambda: ed.seal(event_subject, event_headers, body),
        "seal_check": lambda: ed.hub_sealed(event_subject, sealed, body),
        "digest": lambda: message_digest("ed25519-sha256", event_subject, sealed, body, stored_at),
        "sm2_bundle_sign": lambda: sm2.bundle_headers(subject, msg_id, bundle),
        "sm2_bundle_verify": lambda: signed_by_hub(sm2.keys.public, sm2_msg),
        "sm3_seal": lambda: sm2.seal(event_subject, event_headers, body),
        "sm3_digest": lambda: message_digest("sm2-sm3", event_subject, sealed, body, stored_at),
    }


def measure(folder: Path, quick: bool) -> dict[str, float]:
    """µs per operation, median; ``quick``: fewer rounds."""
    ops = operations(folder)
    for name, op in ops.items():  # each must do what the hub relies on before it is timed
        if name in ("bundle_verify", "seal_check", "sm2_bundle_verify") and op() is not True:
            raise AssertionError(f"{name}: the operation failed on a valid message")
    if ops["receipt_check"]() is None:
        raise AssertionError("receipt_check: a valid receipt batch was refused")
    fast, slow = ((10, 20), (3, 1)) if quick else ((50, 40), (21, 1))
    return {name: per_op_us(op, *(slow if name in SLOW else fast)) for name, op in ops.items()}


async def costs(folder: Path, quick: bool) -> dict[str, float]:
    """``measure`` off the event loop."""
    return await asyncio.to_thread(measure, folder, quick)
