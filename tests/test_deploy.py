"""docker-compose.yml cannot run here (no Docker engine), so test what it relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from hub.config import HubSettings
from hub.ledger import engine_url

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    )
    return loaded


def test_compose_runs_nats_with_the_shipped_config_and_the_hub_against_it() -> None:
    services = compose()["services"]
    assert set(services) >= {"nats", "hub"}
    assert services["nats"]["entrypoint"] == ["nats-server"]
    assert services["nats"]["command"] == ["-c", "/etc/nats/nats.conf"]
    assert "./deploy/nats.conf:/etc/nats/nats.conf:ro" in services["nats"]["volumes"]
    assert services["hub"]["command"] == ["serve"]
    assert services["hub"]["environment"]["HUB_NATS_URL"] == "nats://nats:4222"


def test_compose_gives_the_hub_a_postgresql_ledger_it_can_use() -> None:
    services = compose()["services"]
    url = services["hub"]["environment"]["HUB_LEDGER_URL"]
    assert url.startswith("postgresql://hub:") and url.endswith("@postgres:5432/hub")
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "hub"
    assert engine_url(url.replace("${HUB_DB_PASSWORD:?set HUB_DB_PASSWORD}", "secret")).startswith(
        "postgresql+asyncpg://hub:secret@postgres:5432/hub"
    )
    assert set(services["hub"]["depends_on"]) == {"nats", "postgres"}


def test_the_nats_config_is_valid_for_the_shipped_nats_server_and_fsyncs_always() -> None:
    config = ROOT / "deploy" / "nats.conf"
    checked = subprocess.run(
        [BIN / "nats-server", "-t", "-c", config], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    assert "sync_interval: always" in config.read_text(encoding="utf-8")
    assert "listen: 0.0.0.0:4222" in config.read_text(encoding="utf-8")


def test_the_hub_command_the_compose_file_runs_exists() -> None:
    shown = subprocess.run([BIN / "hub", "serve", "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "HUB_NATS_URL" in shown.stdout


def test_compose_environment_names_real_settings() -> None:
    names = {f"HUB_{name.upper()}" for name in HubSettings.model_fields}
    for service in ("nats", "hub"):
        assert set(compose()["services"][service].get("environment", {})) <= names


def test_the_image_contains_every_package_and_installs_the_project() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for package in ("hub", "schemas", "subscribers"):
        assert f"COPY {package} {package}" in dockerfile
    assert "pip install --no-cache-dir ." in dockerfile
    assert 'ENTRYPOINT ["hub"]' in dockerfile
