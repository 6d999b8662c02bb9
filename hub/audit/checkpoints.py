"""Signed, chained checkpoints over the record: events, receipts, dead-letter advisories.

Every few seconds under traffic the hub appends a checkpoint to the audit stream: the new messages
of each covered stream since the last one (stream, sequence, the digest of subject, the headers
that matter and body, who wrote it, the event key), the hash of the previous checkpoint, and the
hub's signature over it all. A message missing from a stream, changed, or written by another
identity, and a checkpoint removed or altered, are then named by ``hub.audit.verify``.

Any number of hub processes may run the writer: a checkpoint is appended only if the audit subject
has not moved since its predecessor was read (``Nats-Expected-Last-Subject-Sequence``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict

from hub.audit.messages import message_digest, stored_text
from hub.audit.trust import RecordTrust
from hub.config import HubSettings
from hub.streams import WRONG_LAST_SEQUENCE, read_range
from hub.timeliness import Clock
from hub.turns import in_turns
from schemas.wire import HEADER_EXPECTED_LAST, HEADER_MSG_ID, HEADER_SIGNATURE, Wire
from subscribers.signing import digest, signing_input

log = logging.getLogger(__name__)

MAX_ENTRIES = 4000  # per checkpoint: ~450 KB, well within the stream's message limit
OK, FOREIGN, GAP = "ok", "foreign", "gap"
STATUS_ZH = {OK: "正常", FOREIGN: "非枢纽或本单位写入", GAP: "覆盖前已缺失"}


class Checkpoint(BaseModel):
    """One checkpoint (its JSON is what the signature covers)."""

    model_config = ConfigDict(extra="forbid")

    n: int  # 1, 2, 3, … without gaps
    prev: str  # hex digest of the previous checkpoint's body ("" for the first)
    suite: str  # ed25519-sha256 or sm2-sm3
    key: str  # the public key that signed this checkpoint
    at: datetime
    upto: dict[str, int]  # per stream: the last sequence covered so far (cumulative)
    entries: list[tuple[str, int, str, str, str]]  # stream, seq, digest, status, key
    rotate_to: str | None = None  # from the next checkpoint on, signed by this key

    def body(self) -> bytes:
        """The signed bytes."""
        return self.model_dump_json().encode()


@dataclass(frozen=True)
class Tip:
    """The latest checkpoint and where it is stored."""

    seq: int  # its sequence in the audit stream (0: none yet)
    checkpoint: Checkpoint | None
    body: bytes


def covered_streams(wire: Wire) -> tuple[str, ...]:
    """The streams the checkpoints cover.

    Deliveries are signed bundles, checked by their readers; the quarantine keeps what was refused.
    """
    return (wire.events_stream, wire.receipts_stream, wire.advisories_stream)


def checkpoint_signature(trust: RecordTrust, subject: str, cp: Checkpoint, body: bytes) -> str:
    """The hub's signature of a checkpoint."""
    return trust.keys.signer.sign(signing_input(subject, str(cp.n), body))


class Checkpointer:
    """Writes checkpoints while the hub runs."""

    def __init__(
        self, js: JetStreamContext, settings: HubSettings, trust: RecordTrust, clock: Clock
    ) -> None:
        self.js, self.settings, self.trust, self.clock = js, settings, trust, clock
        self.wire = settings.wire
        self.written = 0

    async def tip(self) -> Tip:
        """The latest checkpoint."""
        try:
            found = await self.js.get_last_msg(self.wire.audit_stream, self.wire.checkpoint_subject)
        except nats.js.errors.NotFoundError:
            return Tip(0, None, b"")
        body = found.data or b""
        return Tip(int(found.seq or 0), Checkpoint.model_validate_json(body), body)

    def entry(self, stream: str, msg: Msg) -> tuple[str, int, str, str, str]:
        """What a checkpoint says of one message."""
        headers, seq = msg.headers or {}, msg.metadata.sequence.stream
        suite = self.trust.keys.suite
        found = message_digest(suite, msg.subject, headers, msg.data, stored_text(msg))
        if stream == self.wire.events_stream:
            sealed = self.trust.hub_sealed(msg.subject, headers, msg.data)
            return stream, seq, found, OK if sealed else FOREIGN, headers.get(HEADER_MSG_ID, "")
        if stream == self.wire.receipts_stream:
            writer = self.trust.receipt_writer(msg.subject, headers, msg.data)
            return stream, seq, found, OK if writer else FOREIGN, self.wire.org_of(msg.subject)
        return stream, seq, found, OK, ""

    async def write_once(self, rotate_to: str | None = None) -> int:
        """Cover what is new; returns how many messages the new checkpoint covers (0: none).

        ``rotate_to``: the checkpoint also hands signing over to that key (written even when
        nothing is new; -1 when another process appended first: try again).
        """
        tip = await self.tip()
        upto = dict(tip.checkpoint.upto) if tip.checkpoint else {}
        entries: list[tuple[str, int, str, str, str]] = []
        for stream in covered_streams(self.wire):
            room = MAX_ENTRIES - len(entries)
            last = int((await self.js.stream_info(stream)).state.last_seq)
            start = upto.get(stream, 0) + 1
            end = min(last, start + room - 1)
            if room <= 0 or end < start:
                continue
            seen = set()
            async for msgs in read_range(self.js, stream, start, end):
                async for msg in in_turns(msgs):  # a signature check each
                    entries.append(self.entry(stream, msg))
                    seen.add(msg.metadata.sequence.stream)
            entries += [(stream, s, "", GAP, "") for s in range(start, end + 1) if s not in seen]
            upto[stream] = end
        if not entries and rotate_to is None:
            return 0
        previous = tip.checkpoint
        checkpoint = Checkpoint(
            n=previous.n + 1 if previous else 1,
            prev=digest(previous.suite, tip.body).hex() if previous else "",
            suite=self.trust.keys.suite,
            key=self.trust.keys.public,
            at=self.clock(),
            upto=upto,
            entries=sorted(entries, key=lambda e: (e[0], e[1])),
            rotate_to=rotate_to,
        )
        if not await self._append(checkpoint, tip.seq):
            return -1 if rotate_to else 0
        self.written += 1
        gaps = [e for e in entries if e[3] != OK]
        if gaps:
            log.error(
                "audit.checkpoint_anomalies",
                extra={
                    "n": checkpoint.n,
                    "anomalies": [f"{e[0]}#{e[1]} {e[3]}" for e in gaps[:20]],
                },
            )
        return len(entries)

    async def _append(self, checkpoint: Checkpoint, after: int) -> bool:
        subject, body = self.wire.checkpoint_subject, checkpoint.body()
        headers = {
            HEADER_SIGNATURE: checkpoint_signature(self.trust, subject, checkpoint, body),
            HEADER_EXPECTED_LAST: str(after),
        }
        try:
            await self.js.publish(subject, body, headers=headers)
        except nats.js.errors.APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:  # another hub process wrote one meanwhile
                return False
            raise
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Checkpoint every ``HUB_CHECKPOINT_S`` (at once again while there is a backlog)."""
        while not stop.is_set():
            try:
                covered = await self.write_once()
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("audit.checkpoint_deferred", extra={"error": repr(exc)})
                covered = 0
            if covered >= MAX_ENTRIES:
                continue
            try:
                async with asyncio.timeout(self.settings.checkpoint_s):
                    await stop.wait()
            except TimeoutError:
                continue
