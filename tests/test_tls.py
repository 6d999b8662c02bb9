"""TLS beyond loopback: the county's own CA, servers that require it, clients that verify it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hub.config import HubSettings
from hub.errors import ConfigError
from hub.identity.tls import ensure_tls
from hub.natsd import NatsServer
from subscribers.connection import connect
from subscribers.errors import NatsUnavailable
from tests.conftest import secured_server
from tests.helpers import run_hub

pytestmark = pytest.mark.connected


async def test_hub_credentials_tls_makes_a_ca_and_a_server_certificate(
    settings: HubSettings,
) -> None:
    code, out, err = await run_hub(settings, "credentials", "tls", "--host", "nats-1")
    tls = settings.credentials_store / "tls"
    assert code == 0, err
    assert {p.name for p in tls.iterdir()} == {
        "ca.pem",
        "ca-key.pem",
        "server.pem",
        "server-key.pem",
    }
    for key in ("ca-key.pem", "server-key.pem"):
        assert stat.S_IMODE((tls / key).stat().st_mode) == 0o600
    assert "HUB_TLS_CA" in out


async def test_a_tls_server_talks_only_to_clients_that_trust_its_ca(
    settings: HubSettings, tmp_path: Path, authority_dir: Path
) -> None:
    files = ensure_tls(tmp_path / "tls", ["127.0.0.1"])
    other_ca = ensure_tls(tmp_path / "other", ["127.0.0.1"]).ca
    creds = settings.credentials_store / "admin.creds"
    async with secured_server(tmp_path / "nats", authority_dir, tls=files) as server:
        assert server.url.startswith("tls://")
        trusted = await connect(
            server.url, name="t", attempts=2, credentials=creds, tls_ca=files.ca
        )
        await trusted.close()
        with pytest.raises(NatsUnavailable):  # a certificate of another CA: refused
            await connect(server.url, name="t", attempts=2, credentials=creds, tls_ca=other_ca)
        plain = server.url.replace("tls://", "nats://")
        with pytest.raises(NatsUnavailable):  # no TLS at all: refused
            await connect(plain, name="t", attempts=2, credentials=creds, tls_ca=None)


async def test_an_embedded_server_beyond_loopback_without_tls_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HUB_EMBEDDED_HOST"):
        await NatsServer(tmp_path, host="0.0.0.0").start()


async def test_hub_up_runs_the_demo_over_tls_once_the_county_has_certificates(
    settings: HubSettings, tmp_path: Path
) -> None:
    county = tmp_path / "county"
    store = str(county / "credentials")
    code, _, err = await run_hub(
        settings, "credentials", "tls", HUB_DATA_DIR=str(county), HUB_CREDENTIALS_DIR=store
    )
    assert code == 0, err
    code, out, err = await run_hub(
        settings,
        *("up", "--rounds", "2", "--interval", "0.2"),
        HUB_NATS_URL="",
        HUB_DATA_DIR=str(county),
        HUB_CREDENTIALS_DIR=store,
    )
    assert code == 0, err
    assert "枢纽已启动：tls://127.0.0.1:" in out
    assert "送达 19/19 个单位已签收" in out
