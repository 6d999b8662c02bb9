"""The hub's wire contract: the envelope, one model per Article 15 category, replies, receipts."""

from schemas.complaint_outcome import Complainant, ComplaintOutcome
from schemas.discretion_standard import DiscretionStandard
from schemas.envelope import (
    CATEGORIES,
    EVENT_ADAPTER,
    EVENT_TYPES,
    Category,
    ComplaintOutcomeEvent,
    DiscretionStandardEvent,
    EnvelopeBase,
    Event,
    InspectionRecordEvent,
    LawChangeEvent,
    OtherEvent,
    PermitEvent,
    StatisticsEvent,
    summary_zh,
)
from schemas.inspection_record import InspectionRecord
from schemas.law_change import LawChange
from schemas.other import Other
from schemas.permit import Permit
from schemas.receipt import Receipt
from schemas.replies import REPLY_ADAPTER, Accepted, FieldError, IngestReply, Rejected, Unavailable
from schemas.statistics import Statistics
from schemas.wire import Wire

__all__ = [
    "CATEGORIES",
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "REPLY_ADAPTER",
    "Accepted",
    "Category",
    "Complainant",
    "ComplaintOutcome",
    "ComplaintOutcomeEvent",
    "DiscretionStandard",
    "DiscretionStandardEvent",
    "EnvelopeBase",
    "Event",
    "FieldError",
    "IngestReply",
    "InspectionRecord",
    "InspectionRecordEvent",
    "LawChange",
    "LawChangeEvent",
    "Other",
    "OtherEvent",
    "Permit",
    "PermitEvent",
    "Receipt",
    "Rejected",
    "Statistics",
    "StatisticsEvent",
    "Unavailable",
    "Wire",
    "summary_zh",
]
