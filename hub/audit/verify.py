"""Checking the record: every checkpoint signed and linked, every covered message as it was.

The checks work on plain records (``Stored``), so that the same code verifies the live streams
(``hub audit verify``, and the running hub every ``HUB_AUDIT_VERIFY_S``) and an inspector's export
on a machine that has never seen the hub (``hub audit verify --export DIR``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from hub.audit.checkpoints import FOREIGN, GAP, OK, Checkpoint
from hub.audit.messages import canonical, message_digest
from schemas.wire import HEADER_MSG_ID, HEADER_SIGNATURE
from subscribers.signing import digest, signing_input, verify

KIND_ZH = {
    "deleted": "被删除",
    "changed": "被改动",
    "inserted": "被插入（非枢纽或本单位写入）",
    "uncovered": "不在任何检查点内",
    "checkpoint_missing": "检查点缺失",
    "checkpoint_forged": "检查点签名无效",
    "chain_broken": "检查点链接断开",
}


@dataclass(frozen=True)
class Stored:
    """One stored message as the checks see it."""

    stream: str
    seq: int
    subject: str
    headers: Mapping[str, str]
    body: bytes
    stored_at: str = ""  # when the stream stored it (ISO 8601, as the digests write it)
    body_digest: str | None = None  # an export's masked message: the original body's digest


@dataclass(frozen=True)
class Finding:
    """One thing that is not as the record says."""

    kind: str
    stream: str
    seq: int
    key: str = ""
    detail: str = ""

    def text(self) -> str:
        """One line, Chinese first."""
        where = f"{self.stream} 序号 {self.seq}" + (f"（{self.key}）" if self.key else "")
        extra = f"：{self.detail}" if self.detail else ""
        return f"{where} {KIND_ZH[self.kind]}{extra} / {self.kind}"


@dataclass
class Expected:
    """What the checkpoints say of one message."""

    digest: str
    status: str
    key: str
    suite: str
    checkpoint: int


@dataclass
class Chain:
    """The checkpoints as verified: what they cover, and what is wrong with them."""

    expected: dict[str, dict[int, Expected]] = field(default_factory=dict)
    upto: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    count: int = 0
    last_at: datetime | None = None
    keys: list[str] = field(default_factory=list)
    written: dict[int, datetime] = field(default_factory=dict)  # checkpoint n → when written

    def in_period(self, finding: Finding, start: datetime, end: datetime) -> bool:
        """Whether ``finding`` concerns a message covered by a checkpoint written in the period.

        Checkpoint findings, and messages no checkpoint covers, always do.
        """
        entry = self.expected.get(finding.stream, {}).get(finding.seq)
        if entry is None or finding.kind.startswith("checkpoint"):
            return True
        return start <= self.written[entry.checkpoint] < end


def check_chain(
    checkpoints: Sequence[Stored], trusted: Iterable[str], *, whole: bool = True
) -> Chain:
    """Verify every checkpoint's signature and its link to the previous one.

    A signature counts when made by a trusted key, or by a key a trusted key rotated to. Collects
    what the valid checkpoints cover. ``whole``: the chain starts at the first checkpoint (an
    export holds a stretch of it, linked from its first checkpoint on).
    """
    chain = Chain(keys=list(trusted))
    previous: tuple[Checkpoint, bytes] | None = None
    for stored in checkpoints:
        try:
            cp = Checkpoint.model_validate_json(stored.body)
        except ValidationError:
            chain.findings.append(Finding("checkpoint_forged", stored.stream, stored.seq))
            continue
        signed = signing_input(stored.subject, str(cp.n), stored.body)
        signature = stored.headers.get(HEADER_SIGNATURE, "")
        if cp.key not in chain.keys or not verify(cp.key, signed, signature):
            detail = f"第 {cp.n} 个检查点，签名密钥 {cp.key[:20]}…"
            chain.findings.append(
                Finding("checkpoint_forged", stored.stream, stored.seq, "", detail)
            )
            continue
        expected_n = previous[0].n + 1 if previous else (1 if whole else cp.n)
        if cp.n != expected_n:
            detail = f"应为第 {expected_n} 个，见到第 {cp.n} 个"
            chain.findings.append(
                Finding("checkpoint_missing", stored.stream, stored.seq, "", detail)
            )
        elif previous and cp.prev != digest(previous[0].suite, previous[1]).hex():
            detail = f"第 {cp.n} 个检查点与前一个不衔接"
            chain.findings.append(Finding("chain_broken", stored.stream, stored.seq, "", detail))
        for stream, seq, found, status, key in cp.entries:
            chain.expected.setdefault(stream, {})[seq] = Expected(
                found, status, key, cp.suite, cp.n
            )
        chain.upto = dict(cp.upto)
        if cp.rotate_to:
            chain.keys.append(cp.rotate_to)
        chain.count, chain.last_at = chain.count + 1, cp.at
        chain.written[cp.n] = cp.at
        previous = (cp, stored.body)
    return chain


def check_messages(
    chain: Chain,
    messages: Mapping[str, Iterable[Stored]],
    *,
    complete: bool,
    expired_below: Mapping[str, int] | None = None,
) -> list[Finding]:
    """Compare the messages with what the checkpoints say of them.

    ``complete``: the messages are a whole stream (the live check), so a covered message that is
    absent was deleted; an export holds only some messages. ``expired_below``: per stream, the
    first sequence its retention keeps (older messages may have expired lawfully).
    """
    findings: list[Finding] = []
    for stream, stored in messages.items():
        expected = chain.expected.get(stream, {})
        present: set[int] = set()
        for msg in stored:
            present.add(msg.seq)
            findings += _one(stream, msg, expected.get(msg.seq), chain.upto.get(stream, 0))
        if not complete:
            continue
        floor = (expired_below or {}).get(stream, 0)
        for seq, entry in sorted(expected.items()):
            if seq not in present and seq >= floor and entry.status != GAP:
                findings.append(Finding("deleted", stream, seq, entry.key))
            elif entry.status == GAP and seq >= floor:
                findings.append(Finding("deleted", stream, seq, "", "在写入检查点之前已缺失"))
    return sorted(findings, key=lambda f: (f.stream, f.seq, f.kind))


def _one(stream: str, msg: Stored, entry: Expected | None, upto: int) -> list[Finding]:
    if entry is None:
        if msg.seq <= upto:  # inside the covered range, yet no checkpoint names it
            return [Finding("uncovered", stream, msg.seq, msg.headers.get(HEADER_MSG_ID, ""))]
        return []  # newer than the latest checkpoint: covered by the next one
    if entry.status == FOREIGN:
        return [Finding("inserted", stream, msg.seq, entry.key, "写入者不是枢纽或本单位")]
    if entry.status != OK:
        return []
    found = (
        _masked_digest(entry.suite, msg)
        if msg.body_digest is not None
        else message_digest(entry.suite, msg.subject, msg.headers, msg.body, msg.stored_at)
    )
    if found != entry.digest:
        return [Finding("changed", stream, msg.seq, entry.key)]
    return []


def _masked_digest(suite: str, msg: Stored) -> str:
    """The digest of an exported message whose body was masked, from its original body digest."""
    assert msg.body_digest is not None
    original = bytes.fromhex(msg.body_digest)
    return digest(suite, canonical(msg.subject, msg.headers, original, msg.stored_at)).hex()
