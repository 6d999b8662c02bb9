"""What an inspector asks for: one organisation's record over a period, verifiable offline.

``hub audit export --org ORG --from --to DIR`` writes, into DIR:

- ``manifest.json``: who, which period, when made, the signature suite, the counts;
- ``public-key.txt``: the hub's public key (compare it with the one published by the county);
- ``messages.jsonl``: the organisation's events (as publisher or recipient) and every receipt
  about them, exactly as stored (stream, sequence, store time, subject, headers, body); a body
  holding personal data the exporting identity is not entitled to is masked, and carries the
  digest of the original body instead;
- ``deliveries.jsonl``: the bundles delivered to the organisation, with the hub's signatures;
- ``ledger.jsonl``: the organisation's ledger rows for events formed in the period;
- ``checkpoints.jsonl``: the signed checkpoints covering all of it.

``verify_export`` needs nothing but DIR: the checkpoints' signatures and links, every message
against its checkpoint entry, every bundle's signature, and every ledger row against the receipts
(an acknowledged row needs its receipt, at the time the store recorded it).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import nats.js.errors
from nats.js import JetStreamContext
from pydantic import ValidationError

from hub.audit.checkpoints import Checkpoint, covered_streams
from hub.audit.record import genesis_key, read_all
from hub.audit.verify import Finding, Stored, check_chain, check_messages
from hub.envelope import without_complainant
from hub.ledger import DeliveryRow, Ledger
from schemas.delivery import DeliveryBundle
from schemas.personal import mask_text
from schemas.receipt import ReceiptBatch
from schemas.wire import HEADER_MSG_ID, HEADER_PERSONAL_DATA_TO, HEADER_SIGNATURE, Wire
from subscribers.signing import digest, follow_keys, signing_input, verify

FILES = ("manifest.json", "public-key.txt", "messages.jsonl", "deliveries.jsonl", "ledger.jsonl")
CHECKPOINTS = "checkpoints.jsonl"
COVER_POLL_S = 0.5
TIME_PRECISION_S = 0.001


@dataclass(frozen=True)
class Manifest:
    """What the export holds."""

    org: str
    day_from: str
    day_to: str
    made_at: str
    suite: str
    public_key: str
    personal_data: str  # masked, or entitled (shown: the organisation was entitled to it)
    counts: dict[str, int]
    key_chain: list[list[str]]  # later signing keys, each endorsed by the one before


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"


def _body_fields(body: bytes) -> dict[str, str]:
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_b64": base64.b64encode(body).decode()}


def message_line(msg: Stored, shown: bytes, suite: str) -> dict[str, Any]:
    """One exported message; ``shown`` is its body as exported (masked, or the body itself)."""
    record: dict[str, Any] = {
        "stream": msg.stream,
        "seq": msg.seq,
        "stored_at": msg.stored_at,
        "subject": msg.subject,
        "headers": dict(msg.headers),
        **_body_fields(shown),
    }
    if shown != msg.body:
        record["masked"] = True
        record["body_digest"] = digest(suite, msg.body).hex()
    return record


def stored_of(record: dict[str, Any]) -> Stored:
    """An exported message read back."""
    body = (
        record["body"].encode("utf-8")
        if "body" in record
        else base64.b64decode(record.get("body_b64", ""))
    )
    return Stored(
        record["stream"],
        int(record["seq"]),
        record["subject"],
        record["headers"],
        body,
        record.get("stored_at", ""),
        record.get("body_digest"),
    )


def masked(msg: Stored, org: str, personal_data: bool) -> bytes:
    """The body the export shows: personal data masked unless ``org`` was entitled to it."""
    entitled = set(filter(None, msg.headers.get(HEADER_PERSONAL_DATA_TO, "").split(",")))
    if personal_data and org in entitled:
        return msg.body
    body = without_complainant(msg.body) if entitled else msg.body
    try:
        return mask_text(body.decode("utf-8")).encode("utf-8")
    except UnicodeDecodeError:
        return body


def _receipt_keys(body: bytes) -> set[tuple[str, str]]:
    try:
        batch = ReceiptBatch.model_validate_json(body)
    except ValidationError:
        return set()
    return {(r.event_key, r.recipient) for r in batch.receipts}


def _bundle_keys(body: bytes) -> set[str]:
    try:
        bundle = DeliveryBundle.model_validate_json(body)
    except ValidationError:
        return set()
    return {item.key for item in bundle.items}


@dataclass(frozen=True)
class Collected:
    """What goes into an export."""

    messages: list[Stored]
    bundles: list[Stored]
    rows: list[DeliveryRow]
    checkpoints: list[Stored]
    left_out: int = 0  # messages no checkpoint covered yet


async def collect(
    js: JetStreamContext,
    wire: Wire,
    ledger: Ledger,
    org: str,
    day_from: date,
    day_to: date,
    *,
    wait_s: float = 15.0,
) -> Collected:
    """The organisation's record over the period (events formed in it, as the ledger knows).

    Messages newer than the latest checkpoint are waited for (the hub covers them within
    ``HUB_CHECKPOINT_S``) for up to ``wait_s``; any still uncovered are left out and counted.
    """
    rows = await ledger.pairs(day_from=day_from, day_to=day_to, recipient=org)
    rows += await ledger.pairs(day_from=day_from, day_to=day_to, publisher=org)
    rows = list({(r.event_key, r.recipient): r for r in rows}.values())
    keys = {r.event_key for r in rows}
    chosen: list[Stored] = []
    for stream in covered_streams(wire):
        for msg in await read_all(js, stream):
            if stream == wire.events_stream and msg.headers.get(HEADER_MSG_ID) in keys:
                chosen.append(msg)
            elif stream == wire.receipts_stream and any(
                k in keys for k, _ in _receipt_keys(msg.body)
            ):
                chosen.append(msg)
    bundles = [
        m
        for m in await read_all(js, wire.deliveries_stream)
        if m.subject == wire.deliver(org) and _bundle_keys(m.body) & keys
    ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while (upto := await _covered_upto(js, wire)) is not None and loop.time() < deadline:
        if all(m.seq <= upto.get(m.stream, 0) for m in chosen):
            break
        await asyncio.sleep(COVER_POLL_S)
    covered: list[Stored] = []
    later: list[Stored] = []
    for m in chosen:
        (covered if upto and m.seq <= upto.get(m.stream, 0) else later).append(m)
    pending = {m.headers.get(HEADER_MSG_ID) for m in later} | {
        k for m in later for k, _ in _receipt_keys(m.body)
    }
    rows = [r for r in rows if r.event_key not in pending]  # judged once their record is covered
    checkpoints = _covering(await read_all(js, wire.audit_stream), covered)
    return Collected(covered, bundles, rows, checkpoints, len(later))


async def _covered_upto(js: JetStreamContext, wire: Wire) -> dict[str, int] | None:
    """Per stream, the last sequence the latest checkpoint covers (None: no checkpoint yet)."""
    try:
        last = await js.get_last_msg(wire.audit_stream, wire.checkpoint_subject)
    except nats.js.errors.NotFoundError:
        return None
    return Checkpoint.model_validate_json(last.data or b"").upto


def write_export(
    collected: Collected,
    out: Path,
    history: list[dict[str, str]],
    *,
    org: str,
    day_from: date,
    day_to: date,
    personal_data: bool,
    made_at: datetime,
) -> Manifest:
    """Write the export of ``org`` into the empty directory ``out``."""
    suite = history[-1]["suite"]
    chosen, bundles, rows = collected.messages, collected.bundles, collected.rows
    checkpoints = collected.checkpoints
    _write(
        out / "messages.jsonl",
        (message_line(m, masked(m, org, personal_data), suite) for m in chosen),
    )
    _write(
        out / "deliveries.jsonl",
        (message_line(m, masked(m, org, personal_data), suite) for m in bundles),
    )
    _write(out / "ledger.jsonl", (_row_line(r) for r in rows))
    _write(out / CHECKPOINTS, (message_line(c, c.body, suite) for c in checkpoints))
    manifest = Manifest(
        org=org,
        day_from=day_from.isoformat(),
        day_to=day_to.isoformat(),
        made_at=made_at.isoformat(),
        suite=suite,
        public_key=genesis_key(history)[0],
        key_chain=[[h["public"], h.get("endorsement", "")] for h in history[1:]],
        personal_data="entitled" if personal_data else "masked",
        counts={
            "messages": len(chosen),
            "deliveries": len(bundles),
            "ledger_rows": len(rows),
            "checkpoints": len(checkpoints),
        },
    )
    (out / "public-key.txt").write_text(manifest.public_key + "\n", encoding="utf-8")
    text = json.dumps(asdict(manifest), ensure_ascii=False, indent=2) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8")
    return manifest


def _write(path: Path, records: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(_line(record))


def _row_line(row: DeliveryRow) -> dict[str, Any]:
    return {
        k: (v.isoformat() if isinstance(v, datetime | date) else v) for k, v in asdict(row).items()
    }


def _covering(checkpoints: list[Stored], chosen: list[Stored]) -> list[Stored]:
    """The stretch of checkpoints from the first that covers a chosen message to the last."""
    wanted = {(m.stream, m.seq) for m in chosen}
    hits = []
    for i, stored in enumerate(checkpoints):
        cp = Checkpoint.model_validate_json(stored.body)
        if any((stream, seq) in wanted for stream, seq, *_ in cp.entries):
            hits.append(i)
    return checkpoints[hits[0] : hits[-1] + 1] if hits else []


# -- offline ---------------------------------------------------------------------------------------


def _read(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ExportDamaged(
                    f"{path.name} 第 {number} 行不是有效的 JSON：{exc.msg}"
                ) from exc


class ExportDamaged(ValueError):
    """An export that cannot even be read."""


@dataclass(frozen=True)
class ExportCheck:
    """The offline verification of an export."""

    manifest: dict[str, Any]
    findings: list[Finding]
    checkpoints: int
    messages: int


def verify_export(directory: Path, public_key: str | None = None) -> ExportCheck:
    """Verify an export with nothing but its files (and, better, the key published elsewhere)."""
    for name in (*FILES, CHECKPOINTS):
        if not (directory / name).is_file():
            raise ExportDamaged(f"导出目录 {directory} 缺少 {name}")
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    key = public_key or (directory / "public-key.txt").read_text(encoding="utf-8").strip()
    checkpoints = [stored_of(r) for r in _read(directory / CHECKPOINTS)]
    trusted = follow_keys(key, manifest.get("key_chain", []))
    chain = check_chain(checkpoints, trusted, whole=False)
    findings = list(chain.findings)
    messages = [stored_of(r) for r in _read(directory / "messages.jsonl")]
    by_stream: dict[str, list[Stored]] = {}
    for msg in messages:
        by_stream.setdefault(msg.stream, []).append(msg)
        if msg.seq > chain.upto.get(msg.stream, 0):  # after the export's last checkpoint
            key = msg.headers.get(HEADER_MSG_ID, "")
            findings.append(Finding("uncovered", msg.stream, msg.seq, key))
    findings += check_messages(chain, by_stream, complete=False)
    findings += _bundles(directory, chain.keys)
    findings += _ledger_rows(directory, messages)
    return ExportCheck(manifest, findings, chain.count, len(messages))


def _bundles(directory: Path, keys: list[str]) -> list[Finding]:
    found = []
    for record in _read(directory / "deliveries.jsonl"):
        msg = stored_of(record)
        if msg.body_digest is not None:
            continue  # masked: its signature covers the original body
        signed = signing_input(msg.subject, msg.headers.get(HEADER_MSG_ID, ""), msg.body)
        signature = msg.headers.get(HEADER_SIGNATURE, "")
        if not any(verify(k, signed, signature) for k in keys):
            key = msg.headers.get(HEADER_MSG_ID, "")
            found.append(Finding("changed", msg.stream, msg.seq, key, "投递包签名无效"))
    return found


def _ledger_rows(directory: Path, messages: list[Stored]) -> list[Finding]:
    """Each exported ledger row against the exported receipts (already checked above)."""
    receipts: dict[tuple[str, str], list[tuple[Stored, str]]] = {}
    for msg in messages:
        try:
            batch = ReceiptBatch.model_validate_json(msg.body)
        except ValidationError:
            continue
        for r in batch.receipts:
            receipts.setdefault((r.event_key, r.recipient), []).append((msg, r.status))
    found = []
    for number, row in enumerate(_read(directory / "ledger.jsonl"), 1):
        key = (row["event_key"], row["recipient"])
        acks = [m for m, status in receipts.get(key, []) if status == "acknowledged"]
        where = f"{row['event_key']} → {row['recipient']}"
        if row["state"] == "acknowledged" or row.get("acknowledged_at"):
            if not any(_same_time(m.stored_at, row.get("acknowledged_at")) for m in acks):
                found.append(Finding("changed", "ledger", number, where, "台账的签收与回执不符"))
        elif acks:
            found.append(Finding("changed", "ledger", number, where, "回执已签收，台账却未记"))
    return found


def _same_time(stored: str, recorded: str | None) -> bool:
    """The receipt's store time is the acknowledged time (to the ledger's precision)."""
    if not recorded or not stored:
        return False
    apart = datetime.fromisoformat(stored) - datetime.fromisoformat(recorded)
    return abs(apart.total_seconds()) < TIME_PRECISION_S
