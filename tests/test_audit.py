"""The signed record: tampering by anyone, the admin included, is detected and named.

Each attack is made by the strongest identity there is (admin), or on disk; the hub runs with
checkpoints every 0.2 s and verifies every 0.3 s, and ``hub audit verify`` names what was done.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import nats.js.errors
import pytest
from nats.js import JetStreamContext

from hub.audit.checkpoints import Checkpoint, covered_streams
from hub.config import HubSettings
from hub.identity import ADMIN
from hub.recompute import RowDifference, deep_check
from hub.registry import Registry
from hub.samples import sample_event
from hub.service import Hub, running_hub
from schemas.receipt import ReceiptBatch
from schemas.shanghai import shanghai_day
from subscribers.signing import follow_keys, new_signer, rotation_input, signer_of
from tests.conftest import POSTGRES_URL, Orgs, acting_as, hub_running, ledger_where, secured_server
from tests.helpers import eventually, receipt, receiving, run_hub, scrape, trust_of_hub

pytestmark = [pytest.mark.connected, pytest.mark.timeout(120)]

TOWNSHIP, DEPARTMENT, OTHER = "renqiu-chuan", "renqiu-scjg", "renqiu-shimenqiao"
QUICK = {"checkpoint_s": 0.2, "audit_verify_s": 0.3, "deep_check_s": 0.5}


@pytest.fixture
async def audited(settings: HubSettings, registry: Registry) -> AsyncIterator[Hub]:
    """The hub checkpointing and verifying often."""
    async with hub_running(settings.model_copy(update=QUICK), registry) as running:
        yield running


async def publish(orgs: Orgs, count: int, start: int = 1, recipient: str = TOWNSHIP) -> list[str]:
    """``count`` events to ``recipient``; their keys."""
    publisher = await orgs.publisher(DEPARTMENT)
    keys = []
    for n in range(start, start + count):
        event = sample_event("other", DEPARTMENT, datetime.now(UTC), n, recipients=(recipient,))
        accepted = await publisher.publish(event)
        keys.append(f"{accepted.source}/{accepted.id}")
    return keys


async def covered(hub: Hub) -> bool:
    """The latest checkpoint covers every message of the covered streams."""
    js, wire = hub.js, hub.settings.wire
    try:
        last = await js.get_last_msg(wire.audit_stream, wire.checkpoint_subject)
    except nats.js.errors.NotFoundError:
        return False
    upto = Checkpoint.model_validate_json(last.data or b"").upto
    for stream in covered_streams(wire):
        if upto.get(stream, 0) < (await js.stream_info(stream)).state.last_seq:
            return False
    return True


async def verified_clean(hub: Hub) -> bool:
    state = hub.audit.state
    return state.verified_at is not None and state.checkpoints > 0 and state.findings == 0


async def delivered(hub: Hub, orgs: Orgs, keys: list[str]) -> None:
    """The township reads and acknowledges ``keys``; the ledger has the receipts."""
    async with receiving(hub.settings, [TOWNSHIP]) as inboxes:
        await eventually(lambda: len(inboxes[TOWNSHIP].events) == len(keys), within=15)

    async def acknowledged() -> bool:
        rows = await hub.ledger.pairs(day_from=_today(), day_to=_today())
        return sum(r.state == "acknowledged" for r in rows) == len(keys)

    await eventually(acknowledged, within=15)


async def test_an_intact_record_verifies_and_the_ops_page_shows_its_key(
    audited: Hub, orgs: Orgs
) -> None:
    keys = await publish(orgs, 3)
    await delivered(audited, orgs, keys)
    await eventually(lambda: covered(audited), within=15)
    code, out, err = await run_hub(audited.settings, "audit", "verify")
    assert code == 0, err
    assert "未发现删除、改动或插入" in out
    code, key, _ = await run_hub(audited.settings, "audit", "key")
    assert code == 0 and key.strip().startswith("ed25519:")
    await eventually(lambda: verified_clean(audited), within=15)
    document = (await scrape(audited, "/api/ops")).json()["audit"]
    assert document["public_key"] == key.strip() and document["findings"] == 0
    assert document["checkpoints"] >= 1 and document["messages"] >= 4  # 3 events, ≥1 receipt
    metrics = (await scrape(audited)).text
    assert "hub_audit_findings 0.0" in metrics


async def test_deleting_an_event_is_refused_and_recreating_the_stream_without_it_is_named(
    audited: Hub, orgs: Orgs
) -> None:
    wire = audited.settings.wire
    keys = await publish(orgs, 5)
    await eventually(lambda: covered(audited), within=15)
    admin = (await orgs.nc(ADMIN)).jetstream()
    with pytest.raises(nats.js.errors.Error):
        await admin.delete_msg(wire.events_stream, 3)  # deny_delete: the server refuses
    # the remaining way: copy the stream, delete it, write it back without message 3
    await _rewrite_without(admin, wire.events_stream, 3)
    code, _, err = await run_hub(audited.settings, "audit", "verify")
    assert code == 1
    assert f"{wire.events_stream} 序号 3（{keys[2]}） 被删除" in err
    # the running hub sees it too, on the ops page and in the metric
    await eventually(lambda: audited.audit.state.findings > 0, within=15)
    assert any("序号 3" in e and "被删除" in e for e in audited.audit.state.examples)
    assert "hub_audit_findings 0.0" not in (await scrape(audited)).text


async def _rewrite_without(js: JetStreamContext, stream: str, seq: int) -> None:
    """What an admin would do: every message but ``seq`` written back at its own sequence."""
    info = await js.stream_info(stream)
    kept = [await js.get_msg(stream, s) for s in range(1, info.state.last_seq + 1)]
    await js.delete_stream(stream)
    config = info.config
    config.deny_delete = False
    await js.add_stream(config)
    for msg in kept:  # (without the expectations the hub wrote them with)
        headers = {k: v for k, v in (msg.headers or {}).items() if not k.startswith("Nats-Exp")}
        await js.publish(msg.subject or "", msg.data or b"", headers=headers)
    await js.delete_msg(stream, seq)


async def test_a_receipt_written_by_another_identity_is_named_inserted(
    audited: Hub, orgs: Orgs
) -> None:
    wire = audited.settings.wire
    [key] = await publish(orgs, 1)
    forged = receipt(datetime.now(UTC).isoformat(), key=key, recipient=TOWNSHIP).receipt
    body = ReceiptBatch(recipient=TOWNSHIP, receipts=(forged,)).model_dump_json().encode()
    admin = (await orgs.nc(ADMIN)).jetstream()
    stored = await admin.publish(wire.receipts(TOWNSHIP), body)
    await eventually(lambda: covered(audited), within=15)
    code, _, err = await run_hub(audited.settings, "audit", "verify")
    assert code == 1
    assert f"{wire.receipts_stream} 序号 {stored.seq}（{TOWNSHIP}） 被插入" in err


async def test_a_removed_checkpoint_is_named(audited: Hub, orgs: Orgs) -> None:
    wire = audited.settings.wire
    await publish(orgs, 2)
    await eventually(lambda: covered(audited), within=15)
    await publish(orgs, 2, start=3)
    await eventually(lambda: covered(audited), within=15)
    admin = (await orgs.nc(ADMIN)).jetstream()
    count = (await admin.stream_info(wire.audit_stream)).state.last_seq
    assert count >= 2
    await _rewrite_without(admin, wire.audit_stream, 1)  # the first checkpoint, gone
    code, _, err = await run_hub(audited.settings, "audit", "verify")
    assert code == 1
    assert f"{wire.audit_stream} 序号 1 检查点缺失" in err


async def test_a_byte_changed_in_a_block_file_is_named(
    tmp_path: Path, authority_dir: Path, settings: HubSettings, registry: Registry
) -> None:
    # a server of its own, stopped and started; in plaintext, so that one byte of one event's
    # body can be found (encrypted, the whole block fails its authentication instead)
    store = tmp_path / "store"
    async with secured_server(store, authority_dir, store_key=None) as server:
        own = settings.model_copy(update={"nats_url": server.url, **QUICK})
        async with running_hub(own, registry) as hub:  # its streams stay, for the restart
            async with acting_as(own) as mine:
                keys = await publish(mine, 3)
            await eventually(lambda: covered(hub), within=15)
            wire = own.wire
            seq_of_second = 2
    marker = keys[1].split("/")[1].encode()  # the second event's id, in its body and headers
    [block] = [p for p in store.rglob("*.blk") if wire.events_stream in str(p)]
    data = bytearray(block.read_bytes())
    body_at = data.rindex(marker)  # the last occurrence: inside the body
    data[body_at] ^= 0x01
    block.write_bytes(bytes(data))
    async with secured_server(store, authority_dir, store_key=None, port=server.port) as again:
        again_settings = own.model_copy(update={"nats_url": again.url})
        code, _, err = await run_hub(again_settings, "audit", "verify")
    assert code == 1, err
    assert f"{wire.events_stream} 序号 {seq_of_second}" in err, err


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_an_edited_ledger_row_is_named_by_the_deep_check(
    backend: str, settings: HubSettings, registry: Registry, orgs: Orgs, tmp_path: Path
) -> None:
    quick = settings.model_copy(update=QUICK)
    async with (
        ledger_where(backend, tmp_path) as (ledger, url, table),
        hub_running(quick, registry, ledger=ledger) as hub,
    ):
        [read] = await publish(orgs, 1)
        [waiting] = await publish(orgs, 1, start=2, recipient=OTHER)  # nobody reads for OTHER
        await delivered(hub, orgs, [read])
        await eventually(lambda: hub.audit.state.ledger_checked_at is not None, within=15)
        assert await _deep(hub) == []
        # the edit that would make the organisation's on-time rate 100 %
        await _edit(backend, url, table, waiting)
        found = await _deep(hub)
        assert [(d.table, d.key, d.kind) for d in found] == [
            ("deliveries", (waiting, OTHER), "changed")
        ]
        assert "state：台账 acknowledged，应为 pending" in found[0].text()
        await eventually(lambda: hub.audit.state.ledger_differences == 1, within=15)
        if backend == "sqlite":  # (the command reads a PostgreSQL ledger's default schema)
            code, _, err = await run_hub(quick, "ledger", "check", "--deep", HUB_LEDGER_URL=url)
            assert code == 1
            assert f"投递行 {waiting} / {OTHER} 与重算结果不同" in err


async def _deep(hub: Hub) -> list[RowDifference]:
    return await deep_check(hub.js, hub.settings.wire, hub.ledger, trust_of_hub(hub))


async def _edit(backend: str, url: str, table: str, key: str) -> None:
    """Straight in the database, as someone with its password would."""
    sql = (
        f"UPDATE {table} SET state = 'acknowledged', acknowledged_at = published_at "
        f"WHERE event_key = '{key}' AND recipient = '{OTHER}'"
    )
    if backend == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            assert db.execute(sql).rowcount == 1
        return
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        assert await conn.execute(sql) == "UPDATE 1"
    finally:
        await conn.close()


async def test_an_export_verifies_offline_and_one_changed_byte_is_named(
    audited: Hub, orgs: Orgs, tmp_path: Path
) -> None:
    keys = await publish(orgs, 3)
    await delivered(audited, orgs, keys)
    await eventually(lambda: covered(audited), within=15)
    out = tmp_path / "export"
    day = _today().isoformat()
    code, shown, err = await run_hub(
        audited.settings, "audit", "export", "--org", TOWNSHIP, "--from", day, "--to", day, str(out)
    )
    assert code == 0, err
    assert "3 行台账" in shown
    nowhere, no_server = str(tmp_path / "nowhere"), "nats://127.0.0.1:1"  # nothing of the hub

    async def offline() -> tuple[int, str, str]:
        return await run_hub(
            audited.settings,
            *("audit", "verify", "--export", str(out)),
            HUB_CREDENTIALS_DIR=nowhere,
            HUB_NATS_URL=no_server,
        )

    code, shown, err = await offline()
    assert code == 0, err
    assert "未发现删除、改动或插入" in shown
    # one character of the second event's body changed
    lines = (out / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    [index] = [i for i, r in enumerate(records) if r["headers"].get("Nats-Msg-Id") == keys[1]]
    body = records[index]["body"]
    records[index]["body"] = body.replace(body[-20], "X", 1)  # one character of the body
    assert records[index]["body"] != body
    lines[index] = json.dumps(records[index], ensure_ascii=False, sort_keys=True)
    (out / "messages.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _, err = await offline()
    assert code == 1
    seq = records[index]["seq"]
    assert f"{audited.settings.wire.events_stream} 序号 {seq}（{keys[1]}） 被改动" in err


def _today() -> date:
    return shanghai_day(datetime.now(UTC))


async def test_rotating_to_an_sm2_key_is_on_record_and_the_sdk_follows_it(
    settings: HubSettings, registry: Registry, orgs: Orgs
) -> None:
    quick = settings.model_copy(update=QUICK)
    async with running_hub(quick, registry) as before:  # its streams stay, for the restart
        [first] = await publish(orgs, 1)
        await eventually(lambda: covered(before), within=15)
        code, out, err = await run_hub(quick, "audit", "rotate", "--suite", "sm2-sm3")
        assert code == 0, err
        assert "ed25519-sha256 → sm2-sm3" in out
        await eventually(lambda: covered(before), within=15)
    # restarted, the hub signs checkpoints and bundles with the SM2 key; the organisations'
    # credentials still hold the first key, and follow its endorsement of the new one
    async with hub_running(quick, registry) as after:
        assert after.audit.state.suite == "sm2-sm3"
        [second] = await publish(orgs, 1, start=2)
        async with receiving(quick, [TOWNSHIP]) as inboxes:
            await eventually(lambda: len(inboxes[TOWNSHIP].events) == 2, within=30)
        assert [e.key for e, _ in inboxes[TOWNSHIP].events] == [first, second]
        await eventually(lambda: covered(after), within=30)
        code, out, err = await run_hub(quick, "audit", "verify")
        assert code == 0, err
        code, key, shown = await run_hub(quick, "audit", "key")
        assert key.strip().startswith("ed25519:")  # the published key does not change
        assert "sm2-sm3" in shown and "sm2:04" in shown


def test_a_key_chain_cannot_be_extended_by_anyone_but_the_last_key() -> None:
    first, second, intruder = (signer_of(new_signer(s)) for s in ("ed25519-sha256",) * 3)
    endorsed = [second.public, first.sign(rotation_input(second.public))]
    assert follow_keys(first.public, [endorsed]) == [first.public, second.public]
    forged = [intruder.public, intruder.sign(rotation_input(intruder.public))]
    assert follow_keys(first.public, [forged]) == [first.public]
    assert follow_keys(first.public, [endorsed, forged]) == [first.public, second.public]
