"""The delivery ledger: per event and recipient, when formed, published, delivered, acknowledged.

``tables`` holds the schema (with its version), ``records`` what goes in and comes out,
``upserts`` the idempotent writes, ``queries`` the reads, ``figures`` the reports' sums,
``database`` the ``Ledger`` itself.
"""

from hub.ledger.cases import CaseStep, DeadlineRow
from hub.ledger.database import Ledger, engine_url, shown
from hub.ledger.records import (
    STATE_ZH,
    Backlog,
    DeliveryRow,
    DeliveryState,
    EventRecord,
    EventRow,
    PairFigures,
    ReceiptRecord,
)
from hub.ledger.tables import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "STATE_ZH",
    "Backlog",
    "CaseStep",
    "DeadlineRow",
    "DeliveryRow",
    "DeliveryState",
    "EventRecord",
    "EventRow",
    "Ledger",
    "PairFigures",
    "ReceiptRecord",
    "engine_url",
    "shown",
]
