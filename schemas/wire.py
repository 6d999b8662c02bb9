"""The wire contract between the hub and the organisations' systems: subjects, streams, headers.

Every subject carries the organisation it belongs to in a fixed token, so NATS permissions can
confine each organisation to its own: it publishes on ``<root>.ingest.<org>`` and
``<root>.receipts.<org>`` only, and reads through its own consumer ``deliver-<org>``, whose filter
is ``<root>.deliver.<org>``.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_PUBLISHED_AT = "Hub-Published-At"
HEADER_RECIPIENTS = "Hub-Recipients"
HEADER_PERSONAL_DATA_TO = "Hub-Personal-Data-To"
HEADER_RECEIVED_AT = "Hub-Received-At"
HEADER_ERRORS = "Hub-Errors"
HEADER_CASE_STATE = "Hub-Case-State"
HEADER_EXPECTED_LAST = "Nats-Expected-Last-Subject-Sequence"
HEADER_ATTACHMENT_NAME = "Hub-Attachment-Name"
HEADER_ANSWER_ERROR = "Hub-Error"
HEADER_SIGNATURE = "Hub-Signature"  # a bundle's (the hub's key) or a receipt batch's (its sender's)
HEADER_KEY_CHAIN = "Hub-Key-Chain"  # on a bundle: how the signing key descends from the first one
HEADER_SEAL = "Hub-Seal"  # the hub's seal on what it alone writes (events, dead-letter receipts)
CONSUMER_BACKOFF_KEY = "hub_backoff_s"
"""Consumer metadata: the hub's retry delays after a failed handler (seconds, comma-separated)."""


@dataclass(frozen=True)
class Wire:
    """Subject, stream and consumer names under one root (tests give each run its own root)."""

    root: str = "hub"

    @property
    def _prefix(self) -> str:
        return self.root.upper().replace("-", "_").replace(".", "_")

    # subjects
    def ingest(self, org: str) -> str:
        """Where ``org`` sends its events (request/reply)."""
        return f"{self.root}.ingest.{org}"

    @property
    def ingest_any(self) -> str:
        """What the hub listens on for every publisher."""
        return f"{self.root}.ingest.*"

    def org_of_ingest(self, subject: str) -> str:
        """The publishing organisation named by an ingest subject."""
        return subject[len(self.root) + len(".ingest.") :]

    def event(self, publisher: str, category: str) -> str:
        """Where an accepted event is stored."""
        return f"{self.root}.events.{publisher}.{category}"

    def deliver(self, recipient: str) -> str:
        """Where one recipient's delivery bundles are stored (its consumer's filter)."""
        return f"{self.root}.deliver.{recipient}"

    def org_of_receipts(self, subject: str) -> str:
        """The recipient named by a receipts subject."""
        return subject[len(self.root) + len(".receipts.") :]

    def receipts(self, recipient: str) -> str:
        """Where a recipient's receipts go."""
        return f"{self.root}.receipts.{recipient}"

    def case(self, token: str) -> str:
        """Where the steps of one case are stored, in order (``hub.cases.state.case_token``)."""
        return f"{self.root}.events._case.{token}"

    def attach(self, org: str) -> str:
        """Where ``org`` uploads an attachment (request/reply)."""
        return f"{self.root}.attach.{org}"

    @property
    def attach_any(self) -> str:
        """What the hub answers uploads on."""
        return f"{self.root}.attach.*"

    def attachment(self, org: str) -> str:
        """Where ``org`` asks for an attachment of one of its cases (request/reply)."""
        return f"{self.root}.attachment.{org}"

    @property
    def attachment_any(self) -> str:
        """What the hub answers attachment requests on."""
        return f"{self.root}.attachment.*"

    def cases(self, org: str) -> str:
        """Where ``org`` asks for its cases (request/reply)."""
        return f"{self.root}.cases.{org}"

    @property
    def cases_any(self) -> str:
        """What the hub answers case questions on."""
        return f"{self.root}.cases.*"

    def org_of(self, subject: str) -> str:
        """The organisation token of a ``<root>.<kind>.<org>`` subject."""
        return subject.rsplit(".", 1)[-1]

    def quarantine(self, org: str) -> str:
        """Where a rejected message claimed by ``org`` is kept."""
        return f"{self.root}.quarantine.{org}"

    @property
    def quarantine_any(self) -> str:
        """Every rejected message."""
        return f"{self.root}.quarantine.*"

    def org_of_quarantine(self, subject: str) -> str:
        """The organisation a quarantine subject names."""
        return subject[len(self.root) + len(".quarantine.") :]

    # streams
    @property
    def events_stream(self) -> str:
        """Accepted events, once each: the record of what was shared."""
        return f"{self._prefix}_EVENTS"

    @property
    def deliveries_stream(self) -> str:
        """One copy of each event per recipient, read through per-recipient consumers."""
        return f"{self._prefix}_DELIVERIES"

    @property
    def receipts_stream(self) -> str:
        """Receipts from the recipients."""
        return f"{self._prefix}_RECEIPTS"

    @property
    def advisories_stream(self) -> str:
        """JetStream's max-deliveries advisories about the recipients' consumers."""
        return f"{self._prefix}_ADVISORIES"

    @property
    def max_deliveries_advisories(self) -> str:
        """The advisory subject of every recipient consumer that gave up on a delivery."""
        return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{self.deliveries_stream}.*"

    @property
    def refused_advisories(self) -> str:
        """The advisory subject of a bundle a recipient's SDK refused: forged or unreadable."""
        return f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{self.deliveries_stream}.*"

    @property
    def quarantine_stream(self) -> str:
        """Rejected messages, kept with their reasons."""
        return f"{self._prefix}_QUARANTINE"

    @property
    def audit_stream(self) -> str:
        """The hub's signed, chained checkpoints over the record."""
        return f"{self._prefix}_AUDIT"

    @property
    def checkpoint_subject(self) -> str:
        """Where checkpoints are appended, one after another."""
        return f"{self.root}.audit.checkpoint"

    @property
    def attachments_bucket(self) -> str:
        """The object store of case attachments, named by SHA-256."""
        return f"{self._prefix}_ATTACHMENTS"

    @property
    def grants_bucket(self) -> str:
        """The key-value bucket of who may use each attachment."""
        return f"{self._prefix}_GRANTS"

    @property
    def roles_bucket(self) -> str:
        """The key-value bucket of which hub process holds which role (leases that expire)."""
        return f"{self._prefix}_ROLES"

    @property
    def store_streams(self) -> tuple[str, ...]:
        """The streams behind the attachment store and its grants."""
        return (f"OBJ_{self.attachments_bucket}", f"KV_{self.grants_bucket}")

    @property
    def bucket_streams(self) -> tuple[str, ...]:
        """The streams behind every bucket the hub keeps (the store's and the leases)."""
        return (*self.store_streams, f"KV_{self.roles_bucket}")

    @property
    def streams(self) -> tuple[str, ...]:
        """Every stream the hub keeps."""
        return (
            self.events_stream,
            self.deliveries_stream,
            self.receipts_stream,
            self.advisories_stream,
            self.quarantine_stream,
            self.audit_stream,
        )

    # consumers
    @staticmethod
    def delivery_consumer(recipient: str) -> str:
        """The durable consumer a recipient reads through."""
        return f"deliver-{recipient}"

    fanout_consumer = "hub-fanout"
    ledger_consumer = "hub-ledger"
    advisories_consumer = "hub-dead-letters"
    ingest_queue = "hub-ingest"

    # message ids (JetStream de-duplication)
    @staticmethod
    def event_msg_id(event_key: str) -> str:
        """De-duplication id of an accepted event."""
        return event_key

    @staticmethod
    def bundle_msg_id(first_seq: int, last_seq: int, part: int, recipient: str) -> str:
        """De-duplication id of a bundle: the span of accepted events it carries, and for whom."""
        return f"bundle:{first_seq}-{last_seq}:{part}>{recipient}"
