"""Personal data (issue 13, section 6): unreadable at rest, masked wherever people read it.

A complainant's mobile and resident ID number travel in ``complaint_outcome`` events. On disk the
JetStream store is encrypted (the same run without a key shows the numbers in clear, so the check
can fail); the log, ``hub quarantine list``, the ops API and the reports of a demo run show them
only masked; the quarantine, which keeps rejected bytes as received, is closed to organisations by
the server and expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client

from hub.config import HubSettings
from hub.errors import ConfigError
from hub.identity import ADMIN, HUB, OPS
from hub.identity.sessions import connect_as
from hub.registry import Registry
from hub.samples import sample_event
from hub.service import Hub, running_hub
from hub.store_key import SETTING, store_key
from hub.timeliness import shanghai_day
from subscribers.errors import EventRejected
from tests.conftest import Orgs, acting_as, hub_running, secured_server
from tests.helpers import HUB as HUB_BINARY
from tests.helpers import eventually, run_hub

pytestmark = [pytest.mark.connected, pytest.mark.timeout(120)]

TOWNSHIP, ENTITLED, OTHER = "renqiu-chuan", "renqiu-scjg", "renqiu-zjj"
OFFLINE = "renqiu-bb"  # an office: the demo runs no recipient for it, so its copy stays pending
PHONE, PHONE_MASKED = "13831700000", "138****0000"
RESIDENT_ID, RESIDENT_ID_MASKED = "130102198803152045", "130***********2045"
NAME = "赵先生"
# what must never be shown: a resident ID or a mobile number standing alone (a decimal fraction,
# such as a lag in seconds, is not one)
UNMASKED = re.compile(
    r"(?<![0-9A-Za-z.])"
    r"(?:\d{6}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]|1[3-9]\d{9})"
    r"(?![0-9A-Za-z])"
)


def complaint(
    *, event_id: str | None = None, recipients: tuple[str, ...] = (ENTITLED, OTHER)
) -> dict[str, Any]:
    """出岸镇's complaint outcome carrying the complainant's mobile and resident ID number."""
    event = sample_event(
        "complaint_outcome", TOWNSHIP, datetime.now(UTC), recipients=recipients, event_id=event_id
    )
    event["data"]["complainant"] |= {"phone": PHONE, "id_number": RESIDENT_ID}
    return event


# the complainant's own numbers anywhere, even glued to letters, but not inside a longer number:
# a float such as a duration sum (0.13831700000000002) may hold the digits by chance
COMPLAINANTS = re.compile(rf"(?<![\d.])(?:{PHONE}|{RESIDENT_ID})(?!\d)")


def unmasked(text: str) -> list[str]:
    """Every resident ID or mobile number ``text`` shows in full, with the text around it."""
    found = [*UNMASKED.finditer(text), *COMPLAINANTS.finditer(text)]
    return sorted({text[max(0, m.start() - 40) : m.end() + 40] for m in found})


# store encryption


def holding(root: Path, *needles: bytes) -> list[Path]:
    """The files under ``root`` that contain any of ``needles``."""
    return [
        f
        for f in root.rglob("*")
        if f.is_file() and any(needle in f.read_bytes() for needle in needles)
    ]


async def store_after_a_complaint(
    settings: HubSettings, registry: Registry, authority_dir: Path, store: Path, **options: Any
) -> None:
    """Run a hub on a server of its own over ``store``, accept one complaint, stop everything.

    The complainant's data is written to the events stream and to the entitled recipient's bundle.
    """
    async with secured_server(store, authority_dir, **options) as server:
        own = settings.model_copy(update={"nats_url": server.url})
        async with running_hub(own, registry) as hub, acting_as(own) as orgs:
            accepted = await (await orgs.publisher(TOWNSHIP)).publish(complaint())
            await eventually(lambda: bundles_written(hub, len(accepted.recipients)))


async def bundles_written(hub: Hub, count: int) -> bool:
    """The fan-out has stored ``count`` bundles."""
    wire = hub.settings.wire
    fanout = await hub.js.consumer_info(wire.events_stream, wire.fanout_consumer)
    bundles = await hub.js.stream_info(wire.deliveries_stream)
    return not fanout.num_ack_pending and bundles.state.messages == count


def stream_files(store: Path) -> list[Path]:
    """The message blocks of the streams in ``store``."""
    return list(store.glob("jetstream/*/streams/*/msgs/*.blk"))


async def test_the_encrypted_store_holds_no_complainant_phone_or_id_in_clear_text(
    settings: HubSettings, registry: Registry, authority_dir: Path, tmp_path: Path
) -> None:
    store = tmp_path / "nats"
    await store_after_a_complaint(settings, registry, authority_dir, store)
    assert len(stream_files(store)) >= 3  # events, deliveries, receipts… were written here
    # nor does the ledger beside it, or anything else the hub wrote
    assert holding(tmp_path, PHONE.encode(), RESIDENT_ID.encode(), NAME.encode()) == []


async def test_without_a_key_the_same_run_leaves_the_phone_and_id_readable_in_the_store(
    settings: HubSettings, registry: Registry, authority_dir: Path, tmp_path: Path
) -> None:
    store = tmp_path / "nats"
    await store_after_a_complaint(settings, registry, authority_dir, store, store_key=None)
    blocks = set(stream_files(store))
    assert blocks & set(holding(store, PHONE.encode()))  # the check above can fail
    assert blocks & set(holding(store, RESIDENT_ID.encode()))


async def test_a_store_is_refused_to_another_key_and_to_no_key_and_opens_with_its_own(
    settings: HubSettings, authority_dir: Path, tmp_path: Path
) -> None:
    store, key = tmp_path / "nats", secrets.token_hex(32)
    async with secured_server(store, authority_dir, store_key=key) as server:
        async with as_identity(settings, server.url, ADMIN) as nc:
            await nc.jetstream().add_stream(name="KEPT", subjects=["kept.>"])
            await nc.jetstream().publish("kept.one", PHONE.encode())
    for wrong in (secrets.token_hex(32), None):
        with pytest.raises(ConfigError) as refused:
            await secured_server(store, authority_dir, store_key=wrong).start()
        assert refused.value.setting == SETTING == "HUB_JS_KEY_FILE"
        assert str(refused.value).startswith("HUB_JS_KEY_FILE: ")
    async with secured_server(store, authority_dir, store_key=key) as server:
        async with as_identity(settings, server.url, ADMIN) as nc:
            kept = await nc.jetstream().get_msg("KEPT", 1)
    assert kept.data == PHONE.encode()


@asynccontextmanager
async def as_identity(settings: HubSettings, url: str, identity: str) -> AsyncIterator[Client]:
    """A connection as ``identity`` (admin, the hub's services, ops) to the server at ``url``."""
    nc = await connect_as(settings.model_copy(update={"nats_url": url}), identity, label="test")
    try:
        yield nc
    finally:
        await nc.close()


def test_a_key_file_others_may_read_is_refused_naming_the_setting(
    settings: HubSettings, tmp_path: Path
) -> None:
    key_file = tmp_path / "jetstream.key"
    key_file.write_text(secrets.token_hex(32) + "\n", encoding="ascii")
    key_file.chmod(0o644)
    with pytest.raises(ConfigError) as refused:
        store_key(settings.model_copy(update={"js_key_file": key_file}))
    assert refused.value.setting == "HUB_JS_KEY_FILE" and "chmod 600" in refused.value.rule
    key_file.chmod(0o600)  # the same file, closed to others, is taken
    assert (
        store_key(settings.model_copy(update={"js_key_file": key_file}))
        == key_file.read_text(encoding="ascii").strip()
    )


async def test_hub_up_refuses_a_key_file_others_may_read(
    settings: HubSettings, tmp_path: Path
) -> None:
    key_file = tmp_path / "jetstream.key"
    key_file.write_text(secrets.token_hex(32) + "\n", encoding="ascii")
    key_file.chmod(0o640)
    code, _, err = await run_hub(
        settings,
        "up",
        deadline_s=30,
        HUB_NATS_URL="",
        HUB_DATA_DIR=str(tmp_path / "var"),
        HUB_JS_KEY_FILE=str(key_file),
    )
    assert code == 2 and "HUB_JS_KEY_FILE" in err and "chmod 600" in err
    assert not (tmp_path / "var" / "nats").exists()  # no server was started


# the quarantine


@dataclass
class Refusals:
    """What nats-server refused a connection, as it reported it."""

    seen: list[str] = field(default_factory=list)

    async def record(self, exc: Exception) -> None:
        self.seen.append(str(exc).lower())

    def of(self, what: str, subject: str) -> bool:
        needle = f'permissions violation for {what} to "{subject.lower()}"'
        return any(needle in r for r in self.seen)


@asynccontextmanager
async def organisation(settings: HubSettings, org: str) -> AsyncIterator[tuple[Client, Refusals]]:
    """A connection under ``org``'s own credential that records the server's refusals."""
    refusals = Refusals()
    nc = await nats.connect(
        settings.nats_url or "",
        user_credentials=str(settings.credentials_store / "orgs" / f"{org}.creds"),
        inbox_prefix=f"_INBOX.{org}",
        error_cb=refusals.record,
        max_reconnect_attempts=2,
    )
    try:
        yield nc, refusals
    finally:
        await nc.close()


async def quarantined(orgs: Orgs, org: str, event: dict[str, Any]) -> int:
    """Send ``event`` as ``org``; it must be rejected. Its quarantine sequence."""
    with pytest.raises(EventRejected) as rejected:
        await (await orgs.publisher(org)).publish(event)
    assert rejected.value.quarantine_seq is not None
    return rejected.value.quarantine_seq


async def test_an_organisation_cannot_read_the_quarantine_not_even_its_own_rejections(
    hub: Hub, orgs: Orgs, settings: HubSettings
) -> None:
    bad = complaint()
    bad["data"]["complainant"]["phone_mobile"] = PHONE  # a misspelt field: kept as received
    seq = await quarantined(orgs, TOWNSHIP, bad)
    w, api = settings.wire, "$JS.API"
    q, own = w.quarantine_stream, w.quarantine(TOWNSHIP)
    requests = [  # (what it tries, subject of the JetStream API request)
        ("direct get by sequence", f"{api}.DIRECT.GET.{q}"),
        ("direct get of its own last rejection", f"{api}.DIRECT.GET.{q}.{own}"),
        ("get by sequence", f"{api}.STREAM.MSG.GET.{q}"),
        ("an ephemeral consumer", f"{api}.CONSUMER.CREATE.{q}"),
        ("a consumer on its own subject", f"{api}.CONSUMER.CREATE.{q}.spy.{own}"),
        ("a durable consumer", f"{api}.CONSUMER.DURABLE.CREATE.{q}.spy"),
        ("the stream's state", f"{api}.STREAM.INFO.{q}"),
    ]
    subscriptions = [f"{w.root}.quarantine.>", own]  # the rejections as the hub writes them
    request = json.dumps({"seq": seq}).encode()
    async with organisation(settings, TOWNSHIP) as (nc, refusals):
        for _, subject in requests:
            await nc.publish(subject, request, reply=f"_INBOX.{TOWNSHIP}.x")
        for subject in subscriptions:
            await nc.subscribe(subject)
        await nc.flush()
        with contextlib.suppress(TimeoutError):  # then name whatever was not refused
            await eventually(lambda: len(refusals.seen) >= len(requests) + len(subscriptions))
        with pytest.raises(TimeoutError):  # the client's own call gets nothing back either
            await nc.jetstream(timeout=0.5).get_msg(q, seq, direct=True)
    unrefused = [what for what, s in requests if not refusals.of("publish", s)]
    unrefused += [s for s in subscriptions if not refusals.of("subscription", s)]
    assert unrefused == []
    for reader in (HUB, OPS):  # while the hub's and ops' identities read it
        async with as_identity(settings, settings.nats_url or "", reader) as nc:
            kept = await nc.jetstream().get_msg(q, seq, direct=True)
        assert PHONE.encode() in (kept.data or b"")  # the bytes as received


@pytest.mark.parametrize("max_age_s", [None, 7 * 86400.0], ids=["default", "seven-days"])
async def test_the_live_quarantine_keeps_rejections_for_the_configured_period_only(
    settings: HubSettings, registry: Registry, max_age_s: float | None
) -> None:
    chosen = settings.model_copy(update={"quarantine_max_age_s": max_age_s} if max_age_s else {})
    async with hub_running(chosen, registry) as hub:
        live = (await hub.js.stream_info(chosen.wire.quarantine_stream)).config
    assert live.max_age == chosen.quarantine_max_age_s == (max_age_s or 180 * 86400.0)
    assert live.max_msgs_per_subject == chosen.quarantine_per_org  # and a count per publisher
    assert live.max_bytes == chosen.quarantine_max_bytes  # and a size


# masking during a demo run


@dataclass
class Demo:
    """``hub up`` running in a process of its own, as a county runs it."""

    settings: HubSettings  # reaching its embedded server, with the test's credentials
    web_url: str
    out: Path

    def printed(self) -> str:
        return self.out.read_text(encoding="utf-8")

    def said(self, text: str) -> bool:
        return text in self.printed()


@asynccontextmanager
async def demo_running(settings: HubSettings, data_dir: Path, out: Path) -> AsyncIterator[Demo]:
    """``hub up`` with its demo county (complaint outcomes among it) until the body ends.

    Logging at DEBUG, the most the hub ever writes; at-risk from midnight, so that an event left
    unacknowledged shows on the ops page at once.
    """
    environment = {
        **os.environ,
        "HUB_NATS_URL": "",
        "HUB_SUBJECT_ROOT": settings.subject_root,
        "HUB_DATA_DIR": str(data_dir),
        "HUB_CREDENTIALS_DIR": str(settings.credentials_store),
        "HUB_WEB_PORT": "0",
        "HUB_DASHBOARD_PORT": "0",
        "HUB_LOG_LEVEL": "DEBUG",
        "HUB_AT_RISK_AFTER": "00:00",
    }
    with out.open("wb") as written:
        process = await asyncio.create_subprocess_exec(
            HUB_BINARY, "up", "--interval", "0.2", env=environment, stdout=written, stderr=written
        )
    try:
        demo = Demo(settings, "", out)
        await eventually(lambda: demo.said("运维监控：") or process.returncode is not None, 30)
        web = re.search(r"运维监控：(\S+)/ops", demo.printed())
        assert web is not None, demo.printed()
        url = (data_dir / "nats.url").read_text(encoding="utf-8")
        demo.settings = settings.model_copy(update={"nats_url": url, "data_dir": data_dir})
        demo.web_url = web.group(1)
        yield demo
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            assert await process.wait() == 0, demo.printed()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def personal_event_id() -> str:
    """A publisher's own id built from the complainant's mobile and ID number.

    Ids are the publishers' to choose, and the hub shows them: in its log, in a rejection's
    reason, on the ops page's at-risk list and in a report's items.
    """
    return f"tousu-{PHONE}-{RESIDENT_ID}-{secrets.token_hex(2)}"


OPS_PATHS = (
    "/api/ops",
    "/api/ops?county=renqiu&category=complaint_outcome",
    "/metrics",
)


async def web_text(demo: Demo, path: str) -> str:
    """One of the running hub's web endpoints, as text."""
    async with httpx.AsyncClient(base_url=demo.web_url, timeout=10) as client:
        answer = await client.get(path)
    assert answer.status_code == 200, answer.text
    return answer.text


async def ops_shows(demo: Demo, org: str) -> bool:
    """The ops page lists ``org`` at risk and the quarantine panel has the demo's rejections."""
    document = json.loads(await web_text(demo, "/api/ops"))
    return any(a["org"] == org for a in document["at_risk"]) and document["rejections"]["total"]


def report_commands(day: str) -> dict[str, tuple[str, ...]]:
    """Today's reports in every format: the daily report, and the office's scorecard.

    The scorecard lists the complaint the office left unacknowledged, by its event key.
    """
    scorecard = ("report", "org", OFFLINE, "--from", day, "--to", day)
    commands: dict[str, tuple[str, ...]] = {}
    for fmt in ("table", "csv", "json"):
        commands[f"report daily {fmt}"] = ("report", "daily", "--date", day, "--format", fmt)
    commands["report org table"] = scorecard
    commands["report org json"] = (*scorecard, "--format", "json")
    commands["report org csv items"] = (*scorecard, "--format", "csv", "--items")
    return commands


async def printed(settings: HubSettings, *args: str) -> str:
    """What a ``hub`` command printed (it must succeed)."""
    code, out, err = await run_hub(settings, *args)
    assert code == 0, err
    return out


async def test_a_demo_run_with_complaints_shows_ids_and_mobiles_only_masked(
    settings: HubSettings, tmp_path: Path
) -> None:
    data_dir = tmp_path / "var"
    async with demo_running(settings, data_dir, tmp_path / "hub-up.txt") as demo:
        await eventually(lambda: demo.said("投诉人信息仅送"), 30)  # the demo's own complaint
        event_id = personal_event_id()
        async with acting_as(demo.settings) as orgs:
            publisher = await orgs.publisher(TOWNSHIP)
            # accepted; the office runs no recipient: its copy waits, and is at risk
            await publisher.publish(complaint(event_id=event_id, recipients=(ENTITLED, OFFLINE)))
            resent = complaint(event_id=event_id, recipients=(ENTITLED, OFFLINE))
            resent["data"]["matter"] = "补充：" + resent["data"]["matter"]
            await quarantined(orgs, TOWNSHIP, resent)  # the id again, another body: id_conflict
        await eventually(lambda: ops_shows(demo, OFFLINE), 10)  # in the ledger, at risk
        commands = report_commands(shanghai_day(datetime.now(UTC)).isoformat())
        commands["quarantine list"] = ("quarantine", "list")
        ops, outputs = await asyncio.gather(
            asyncio.gather(*(web_text(demo, path) for path in OPS_PATHS)),
            asyncio.gather(*(printed(demo.settings, *args) for args in commands.values())),
        )
    shown = {"ops API": "\n".join(ops)} | dict(zip(commands, outputs, strict=True))
    shown["hub.log"] = (data_dir / "hub.log").read_text(encoding="utf-8")
    shown["nats-server.log"] = (data_dir / "nats" / "nats-server.log").read_text(encoding="utf-8")

    assert {where: unmasked(text) for where, text in shown.items()} == {w: [] for w in shown}
    masked_id = f"tousu-{PHONE_MASKED}-{RESIDENT_ID_MASKED}-"
    for where in (
        "quarantine list",
        "ops API",
        "hub.log",
        "report org table",
        "report org json",
        "report org csv items",
    ):
        assert masked_id in shown[where], where  # shown, and masked: the check is not vacuous
