"""Who may do what on the bus: the subjects each identity may publish and subscribe to.

Least privilege, enforced by nats-server from the user JWT:

- an **organisation** publishes its own events (``<root>.ingest.<org>``) and receipts
  (``<root>.receipts.<org>``), reads its own consumer ``deliver-<org>`` (fetch, info, ack),
  may watch its own deliveries through one consumer ``peek-<org>``, and receives replies only on
  its own inbox prefix ``_INBOX.<org>``;
- the **hub** (its live services) answers ingest, writes events, quarantine, bundles and
  dead-letter receipts, reads its own durable consumers and every stream, but manages none;
- **ops** read streams and consumers (checks, rebuilds, the quarantine), and write nothing;
- **admin** creates and reconfigures streams and consumers (start-up, drift repair).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas.wire import Wire
from subscribers.credentials import inbox_prefix

API = "$JS.API"


class Role(StrEnum):
    """The kinds of identity."""

    ORG = "org"
    HUB = "hub"
    OPS = "ops"
    ADMIN = "admin"


@dataclass(frozen=True)
class Permissions:
    """The subjects an identity may publish to and subscribe to."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    responses: bool = False  # may answer requests it received (the hub's ingest replies)


def peek_consumer(org: str) -> str:
    """The one consumer an organisation may create, to watch its deliveries without taking them."""
    return f"peek-{org}"


def for_org(wire: Wire, org: str) -> Permissions:
    """An organisation: its own subjects, its own consumers, its own inbox."""
    stream = wire.deliveries_stream
    consumer, peek = wire.delivery_consumer(org), peek_consumer(org)
    return Permissions(
        publish=(
            wire.ingest(org),
            wire.receipts(org),
            wire.attach(org),
            wire.attachment(org),
            wire.cases(org),
            f"{API}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
            f"{API}.CONSUMER.INFO.{stream}.{consumer}",
            f"$JS.ACK.{stream}.{consumer}.>",
            f"{API}.CONSUMER.CREATE.{stream}.{peek}.{wire.deliver(org)}",
            f"{API}.CONSUMER.MSG.NEXT.{stream}.{peek}",
            f"{API}.CONSUMER.DELETE.{stream}.{peek}",
        ),
        subscribe=(f"{inbox_prefix(org)}.>",),
    )


def _reading(wire: Wire) -> list[str]:
    """Reading every stream of the hub: info, single messages, ephemeral (ordered) consumers."""
    subjects = [f"{API}.INFO", f"{API}.STREAM.NAMES"]  # names: looking a stream up by subject
    roles = f"KV_{wire.roles_bucket}"  # which hub process plays which role
    subjects += [
        f"{API}.STREAM.INFO.{roles}",
        f"{API}.STREAM.MSG.GET.{roles}",
        f"{API}.DIRECT.GET.{roles}.>",
    ]
    for stream in (*wire.streams, *wire.store_streams):
        subjects += [
            f"{API}.STREAM.INFO.{stream}",
            f"{API}.STREAM.MSG.GET.{stream}",
            f"{API}.DIRECT.GET.{stream}",
            f"{API}.DIRECT.GET.{stream}.>",
            f"{API}.CONSUMER.INFO.{stream}.*",
            f"{API}.CONSUMER.LIST.{stream}",
            f"{API}.CONSUMER.CREATE.{stream}",  # ephemeral consumers only: no name, no durable
            f"$JS.FC.{stream}.>",  # flow control of those consumers
        ]
    return subjects


def for_hub(wire: Wire, name: str = "hub") -> Permissions:
    """The hub's live services: ingest, fan-out, projection, dead letters; no management."""
    root = wire.root
    own = [
        (wire.events_stream, wire.fanout_consumer),
        (wire.events_stream, wire.ledger_consumer),
        (wire.receipts_stream, wire.ledger_consumer),
        (wire.advisories_stream, wire.advisories_consumer),
    ]
    return Permissions(
        publish=(
            f"{root}.events.>",
            f"{root}.deliver.>",
            f"{root}.quarantine.>",
            f"{root}.receipts.>",  # dead-letter receipts on a silent recipient's behalf
            f"{root}.audit.>",  # signed checkpoints
            f"$O.{wire.attachments_bucket}.>",  # case attachments
            f"$KV.{wire.grants_bucket}.>",  # who may use them
            f"$KV.{wire.roles_bucket}.>",  # the roles' leases
            *_reading(wire),
            *(f"{API}.CONSUMER.MSG.NEXT.{s}.{c}" for s, c in own),
            *(f"$JS.ACK.{s}.{c}.>" for s, c in own),
        ),
        subscribe=(
            wire.ingest_any,
            wire.attach_any,
            wire.attachment_any,
            wire.cases_any,
            wire.refused_advisories,  # bundles the recipients' SDKs refused, shown to ops
            f"{inbox_prefix(name)}.>",
        ),
        responses=True,
    )


def for_ops(wire: Wire, name: str = "ops") -> Permissions:
    """Ops at the command line: read the streams, write nothing."""
    return Permissions(publish=tuple(_reading(wire)), subscribe=(f"{inbox_prefix(name)}.>",))


def for_admin(name: str = "admin") -> Permissions:
    """Stream and consumer management (and everything else)."""
    return Permissions(publish=(">",), subscribe=(">",))
