"""The live record read for verification: the checkpoints and every message they cover.

``verify_live`` reads the audit stream first and the covered streams after it, so a message
written meanwhile is merely newer than the latest checkpoint (it will be covered by the next one).
The audit stream holds nothing but checkpoints and keeps them all, so a sequence missing from it
is a checkpoint removed, even the latest one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from hub.audit.checkpoints import covered_streams
from hub.audit.messages import stored_text
from hub.audit.verify import Chain, Finding, Stored, check_chain, check_messages
from hub.streams import read_range
from schemas.wire import Wire
from subscribers.signing import follow_keys

STALL_S = 3.0  # a read that gets nothing for this long has met a message the server cannot read


def stored(stream: str, msg: Msg) -> Stored:
    """A stream message as the checks see it."""
    seq, headers = msg.metadata.sequence.stream, dict(msg.headers or {})
    return Stored(stream, seq, msg.subject, headers, msg.data or b"", stored_text(msg))


async def read_all(js: JetStreamContext, stream: str) -> list[Stored]:
    """Every message of ``stream`` the server can still read.

    A message damaged on disk is not served (its checksum fails) and stalls the read there: the
    read goes on after it, so that only the damaged messages are missing.
    """
    info = await js.stream_info(stream)
    start, last, found = max(int(info.state.first_seq), 1), int(info.state.last_seq), []
    while start <= last:
        got = [
            stored(stream, m)
            async for msgs in read_range(js, stream, start, last, wait_s=STALL_S)
            for m in msgs
        ]
        found += got
        start = got[-1].seq + 1 if got else start + 1
    return found


def genesis_key(history: Sequence[dict[str, str]]) -> list[str]:
    """The keys the record is trusted from: the hub's first, and each later one it endorsed."""
    if not history:
        return []
    chain = [[h["public"], h.get("endorsement", "")] for h in history[1:]]
    return follow_keys(history[0]["public"], chain)


@dataclass
class Verification:
    """What one verification found."""

    chain: Chain
    findings: list[Finding] = field(default_factory=list)
    messages: int = 0  # how many messages were compared

    @property
    def checkpoints(self) -> int:
        """Valid checkpoints read."""
        return self.chain.count

    @property
    def last_checkpoint_at(self) -> datetime | None:
        """When the latest valid checkpoint was written."""
        return self.chain.last_at


def missing_checkpoints(stream: str, checkpoints: Sequence[Stored], last_seq: int) -> list[Finding]:
    """Sequences of the audit stream that hold no checkpoint any more."""
    present = {c.seq for c in checkpoints}
    return [
        Finding("checkpoint_missing", stream, seq, "", "审计流中此序号的检查点已不存在")
        for seq in range(1, last_seq + 1)
        if seq not in present
    ]


async def verify_live(js: JetStreamContext, wire: Wire, trusted: Sequence[str]) -> Verification:
    """Check every checkpoint and every covered message of the running store."""
    info = await js.stream_info(wire.audit_stream)
    checkpoints = await read_all(js, wire.audit_stream)
    chain = check_chain(checkpoints, trusted)
    findings = missing_checkpoints(wire.audit_stream, checkpoints, int(info.state.last_seq))
    findings += chain.findings
    messages: dict[str, list[Stored]] = {}
    expired_below: dict[str, int] = {}
    for stream in covered_streams(wire):
        stream_info = await js.stream_info(stream)
        if stream_info.config.max_age:  # older messages expire lawfully
            expired_below[stream] = int(stream_info.state.first_seq)
        messages[stream] = await read_all(js, stream)
    findings += check_messages(chain, messages, complete=True, expired_below=expired_below)
    compared = sum(len(m) for m in messages.values())
    return Verification(chain, sorted(findings, key=_order), compared)


def _order(finding: Finding) -> tuple[int, str, int]:
    """Checkpoint findings first (they say what the rest can be trusted for), then by stream."""
    return (0 if finding.kind.startswith("checkpoint") else 1, finding.stream, finding.seq)
