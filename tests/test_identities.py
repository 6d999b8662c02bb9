"""Every organisation is who it says it is: attempts an attacker would make, refused by the server.

The attacker holds a *valid* credential, that of 任丘市出岸镇 (``renqiu-chuan``), and tries what
the identities issue lists against another organisation (青塔乡, 市场监管局) and against the hub.
Each attempt must be refused by nats-server itself (a permissions violation, or a refused
connection); afterwards nothing it aimed at has changed, and every allowed path still works.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import nats
import nats.js.errors
import pytest
from nats.aio.client import Client

from hub.config import HubSettings
from hub.identity import HUB
from hub.identity import jwt as nats_jwt
from hub.identity.permissions import peek_consumer
from hub.natsd import NatsServer
from hub.registry import load_registry
from hub.samples import sample_event
from hub.service import Hub
from subscribers.connection import connect
from subscribers.errors import NotAuthorized
from subscribers.publisher import Publisher
from tests.conftest import Orgs, hub_running
from tests.helpers import eventually, receiving, run_hub

pytestmark = [pytest.mark.connected, pytest.mark.timeout(300)]

ATTACKER, VICTIM, PUBLISHER = "renqiu-chuan", "renqiu-qingta", "renqiu-scjg"


@dataclass
class Attacker:
    """A connection under the attacker's valid credentials that records what the server refused."""

    nc: Client
    refusals: list[str] = field(default_factory=list)

    def refused(self, what: str, subject: str) -> bool:
        needle = f'permissions violation for {what} to "{subject.lower()}"'
        return any(needle in r for r in self.refusals)


@asynccontextmanager
async def attacker(settings: HubSettings) -> AsyncIterator[Attacker]:
    found = Attacker(nc=None)  # type: ignore[arg-type]

    async def record(exc: Exception) -> None:
        found.refusals.append(str(exc).lower())

    found.nc = await nats.connect(
        settings.nats_url or "",
        user_credentials=str(settings.credentials_store / "orgs" / f"{ATTACKER}.creds"),
        inbox_prefix=f"_INBOX.{ATTACKER}",
        error_cb=record,
        max_reconnect_attempts=2,
    )
    try:
        yield found
    finally:
        await found.nc.close()


def publish_attempts(settings: HubSettings) -> list[tuple[str, str]]:
    """(what the attacker tries, subject it publishes on)."""
    w = settings.wire
    d, e, r, q = w.deliveries_stream, w.events_stream, w.receipts_stream, w.quarantine_stream
    api = "$JS.API"
    return [
        ("publish an event as the market regulator", w.ingest(PUBLISHER)),
        ("publish an event as another township", w.ingest(VICTIM)),
        ("acknowledge for another township", w.receipts(VICTIM)),
        ("acknowledge for the publisher", w.receipts(PUBLISHER)),
        ("write straight into the events stream", w.event(PUBLISHER, "permit")),
        ("write its own event past ingest", w.event(ATTACKER, "other")),
        ("write a bundle for another township", w.deliver(VICTIM)),
        ("forge an audit checkpoint", w.checkpoint_subject),
        ("write a bundle for itself", w.deliver(ATTACKER)),
        ("write into the quarantine", w.quarantine(PUBLISHER)),
        (
            "forge a max-deliveries advisory",
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{d}.deliver-{VICTIM}",
        ),
        ("reconfigure the events stream", f"{api}.STREAM.UPDATE.{e}"),
        ("purge the events stream", f"{api}.STREAM.PURGE.{e}"),
        ("delete the events stream", f"{api}.STREAM.DELETE.{e}"),
        ("delete one event", f"{api}.STREAM.MSG.DELETE.{e}"),
        ("create a mirror to copy the events out", f"{api}.STREAM.CREATE.COPY"),
        ("read the events stream's state", f"{api}.STREAM.INFO.{e}"),
        ("read a bundle by sequence", f"{api}.STREAM.MSG.GET.{d}"),
        ("read a bundle directly", f"{api}.DIRECT.GET.{d}"),
        ("list the streams", f"{api}.STREAM.NAMES"),
        ("read the account", f"{api}.INFO"),
        ("create a consumer on everyone's deliveries", f"{api}.CONSUMER.CREATE.{d}"),
        (
            "its own peek consumer on another's deliveries",
            f"{api}.CONSUMER.CREATE.{d}.{peek_consumer(ATTACKER)}.{w.deliver(VICTIM)}",
        ),
        (
            "another's peek consumer",
            f"{api}.CONSUMER.CREATE.{d}.{peek_consumer(VICTIM)}.{w.deliver(VICTIM)}",
        ),
        ("a durable consumer of its own design", f"{api}.CONSUMER.DURABLE.CREATE.{d}.spy"),
        ("delete another's consumer", f"{api}.CONSUMER.DELETE.{d}.deliver-{VICTIM}"),
        ("fetch another's deliveries", f"{api}.CONSUMER.MSG.NEXT.{d}.deliver-{VICTIM}"),
        ("read another's consumer", f"{api}.CONSUMER.INFO.{d}.deliver-{VICTIM}"),
        ("acknowledge another's bundle", f"$JS.ACK.{d}.deliver-{VICTIM}.1.1.1.0.0"),
        ("fetch the hub's fan-out consumer", f"{api}.CONSUMER.MSG.NEXT.{e}.{w.fanout_consumer}"),
        ("fetch the hub's ledger consumer", f"{api}.CONSUMER.MSG.NEXT.{r}.{w.ledger_consumer}"),
        ("reconfigure the quarantine", f"{api}.STREAM.UPDATE.{q}"),
        ("push an account update (revocations)", "$SYS.REQ.CLAIMS.UPDATE"),
    ]


def subscribe_attempts(settings: HubSettings) -> list[tuple[str, str, str | None]]:
    """(what the attacker tries, subject it subscribes to, queue group)."""
    w = settings.wire
    return [
        ("answer publishers in the hub's ingest queue", w.ingest_any, w.ingest_queue),
        ("read every publisher's events", f"{w.root}.ingest.>", None),
        ("read another's deliveries", w.deliver(VICTIM), None),
        ("read every delivery", f"{w.root}.deliver.>", None),
        ("read every reply", "_INBOX.>", None),
        ("read another's replies", f"_INBOX.{VICTIM}.>", None),
        ("read the hub's replies", f"_INBOX.{HUB}.>", None),
        ("read everything", ">", None),
        ("read the events stream's subjects", f"{w.root}.events.>", None),
        ("read every receipt", f"{w.root}.receipts.>", None),
        ("read the quarantine", f"{w.root}.quarantine.>", None),
        ("read JetStream's advisories", "$JS.EVENT.>", None),
    ]


async def state_of(hub: Hub) -> dict[str, object]:
    """What the attacks aimed at: the streams, the victim's consumer, the ledger."""
    w = hub.settings.wire
    # the audit stream grows by itself (the hub's checkpoints): forging one is an attempt above
    kept = [s for s in w.streams if s != w.audit_stream]
    streams = {s: (await hub.js.stream_info(s)).state.messages for s in kept}
    victim = await hub.js.consumer_info(w.deliveries_stream, w.delivery_consumer(VICTIM))
    configs = {s: (await hub.js.stream_info(s)).config.as_dict() for s in w.streams}
    return {
        "messages": streams,
        "victim": (victim.num_pending, victim.delivered.stream_seq, victim.ack_floor.stream_seq),
        "ledger": await hub.ledger.dump(),
        "configs": configs,
    }


async def test_an_organisation_with_a_valid_credential_cannot_act_for_others(
    hub: Hub, orgs: Orgs, settings: HubSettings
) -> None:
    event = sample_event("other", PUBLISHER, datetime.now(UTC), recipients=(VICTIM, ATTACKER))
    await (await orgs.publisher(PUBLISHER)).publish(event)
    await eventually(lambda: _bundles(hub, 2))
    await eventually(lambda: _ledger_has(hub, 2))
    before = await state_of(hub)
    publishes, subscribes = publish_attempts(settings), subscribe_attempts(settings)
    async with attacker(settings) as a:
        for _, subject in publishes:
            await a.nc.publish(subject, json.dumps(event).encode(), reply=f"_INBOX.{ATTACKER}.x")
        for _, subject, queue in subscribes:
            await a.nc.subscribe(subject, queue=queue or "")
        await a.nc.flush()
        with contextlib.suppress(TimeoutError):  # then name whatever was not refused
            await eventually(lambda: len(a.refusals) >= len(publishes) + len(subscribes), 10)
        unrefused = [what for what, s in publishes if not a.refused("publish", s)]
        unrefused += [what for what, s, _ in subscribes if not a.refused("subscription", s)]
    await asyncio.sleep(0.5)  # give anything that slipped through the time to land
    after = await state_of(hub)
    assert len(publishes) + len(subscribes) >= 40
    assert unrefused == []
    assert after == before  # nothing the attacks aimed at changed


async def test_no_credential_a_forged_key_and_a_self_signed_jwt_are_refused(
    hub: Hub, settings: HubSettings, tmp_path: Path
) -> None:
    genuine = (settings.credentials_store / "orgs" / f"{ATTACKER}.creds").read_text()
    token = genuine.split("-----BEGIN NATS USER JWT-----")[1].split("------END")[0].strip()
    forged_key = tmp_path / "forged-key.creds"  # the attacker's JWT, someone else's seed
    forged_key.write_text(nats_jwt.credentials_text(token, nats_jwt.new_seed("user")))
    seed, rogue_account = nats_jwt.new_seed("user"), nats_jwt.new_seed("account")
    claims = nats_jwt.user_claims(publish=[">"], subscribe=[">"])
    self_signed = tmp_path / "self-signed.creds"  # a JWT signed by an account nobody trusts
    self_signed.write_text(
        nats_jwt.credentials_text(
            nats_jwt.encode(nats_jwt.public_key(seed), ATTACKER, claims, rogue_account), seed
        )
    )
    with pytest.raises(NotAuthorized):  # no credential at all
        await connect(settings.nats_url, name="anonymous", attempts=2, credentials=None)
    for creds in (forged_key, self_signed):
        with pytest.raises(NotAuthorized):
            await connect(settings.nats_url, name="attacker", attempts=2, credentials=creds)


async def test_what_an_organisation_may_do_works(
    hub: Hub, orgs: Orgs, settings: HubSettings
) -> None:
    own = await orgs.nc(ATTACKER)
    accepted = await (await orgs.publisher(ATTACKER)).publish(
        sample_event("statistics", ATTACKER, datetime.now(UTC), recipients=(PUBLISHER,))
    )
    event = sample_event("other", PUBLISHER, datetime.now(UTC), recipients=(ATTACKER,))
    await (await orgs.publisher(PUBLISHER)).publish(event)
    js = own.jetstream()

    async def waiting_for_it() -> bool:  # it may read its own consumer's state
        info = await js.consumer_info(settings.wire.deliveries_stream, f"deliver-{ATTACKER}")
        return bool(info.num_pending == 1)

    await eventually(waiting_for_it)
    async with receiving(settings, [ATTACKER]) as inboxes:  # fetch, ack, send its receipts
        await eventually(lambda: len(inboxes[ATTACKER].keys) == 1)
    await eventually(lambda: _acknowledged(hub, ATTACKER, 1))
    assert accepted.source == ATTACKER


async def test_a_revoked_organisation_is_cut_off_within_seconds_and_others_go_on(
    hub: Hub, orgs: Orgs, settings: HubSettings, nats_server: NatsServer, tmp_path: Path
) -> None:
    kept = tmp_path / "victim.creds"  # what the revoked organisation still holds
    kept.write_bytes((settings.credentials_store / "orgs" / f"{VICTIM}.creds").read_bytes())
    victim = await orgs.nc(VICTIM)  # connected before the revocation
    pid = nats_server.pid
    publisher = await orgs.publisher(PUBLISHER)
    stop, accepted = asyncio.Event(), []

    async def publish_meanwhile() -> None:
        n = 0
        while not stop.is_set():
            event = sample_event("other", PUBLISHER, datetime.now(UTC), n, recipients=(ATTACKER,))
            accepted.append((await publisher.publish(event)).seq)
            n += 1

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(publish_meanwhile())
        await eventually(lambda: len(accepted) >= 3)
        code, out, err = await run_hub(settings, "credentials", "revoke", VICTIM)
        await eventually(lambda: not victim.is_connected, within=5)
        before = len(accepted)
        await eventually(lambda: len(accepted) >= before + 3, within=10)  # the others go on
        stop.set()
    assert code == 0, err
    assert "已推送到运行中的服务器" in out
    with pytest.raises(NotAuthorized):
        await connect(settings.nats_url, name="revoked", attempts=2, credentials=kept)
    assert nats_server.pid == pid  # no restart


async def _bundles(hub: Hub, count: int) -> bool:
    info = await hub.js.stream_info(hub.settings.wire.deliveries_stream)
    return bool(info.state.messages >= count)


async def _ledger_has(hub: Hub, pairs: int) -> bool:
    return sum((await hub.ledger.counts()).values()) >= pairs


async def _acknowledged(hub: Hub, org: str, count: int) -> bool:
    rows = await hub.ledger.backlog()
    return org in rows and rows[org].waiting == 0 and rows[org].last_receipt is not None


async def test_an_organisation_added_to_the_registry_can_take_part_without_a_restart(
    settings: HubSettings, tmp_path: Path
) -> None:
    shipped = resources.files("hub") / "data" / "cangzhou.toml"
    registry_file = tmp_path / "registry.toml"
    registry_file.write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    growing = settings.model_copy(update={"registry": registry_file, "drift_check_s": 0.3})
    async with hub_running(growing, load_registry(registry_file)) as hub:  # its own copy
        with registry_file.open("a", encoding="utf-8") as out:
            out.write(
                '\n[[org]]\nid = "renqiu-xfjy"\nname = "任丘市消防救援大队"\n'
                'kind = "department"\ncounty = "renqiu"\n'
            )
        await eventually(lambda: _has_consumer(hub, "renqiu-xfjy"), within=10)
        code, _, err = await run_hub(
            growing,
            *("credentials", "issue", "renqiu-xfjy", "--out", str(tmp_path / "xfjy.creds")),
            HUB_REGISTRY=str(registry_file),
        )
        assert code == 0, err
        nc = await connect(growing.nats_url, name="new", credentials=tmp_path / "xfjy.creds")
        try:
            accepted = await Publisher(nc, "renqiu-xfjy", wire=growing.wire).publish(
                sample_event("other", "renqiu-xfjy", datetime.now(UTC), recipients=(VICTIM,))
            )
        finally:
            await nc.close()
    assert accepted.source == "renqiu-xfjy" and accepted.recipients == (VICTIM,)


async def _has_consumer(hub: Hub, org: str) -> bool:
    try:
        await hub.js.consumer_info(hub.settings.wire.deliveries_stream, f"deliver-{org}")
    except nats.js.errors.NotFoundError:
        return False
    return True
