"""docker-compose.yml cannot run here (no Docker engine), so test what it relies on."""

from __future__ import annotations

import os
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


NODES = ("nats-1", "nats-2", "nats-3")


def test_compose_runs_a_three_node_nats_cluster_with_the_shipped_config() -> None:
    services = compose()["services"]
    assert set(services) >= {*NODES, "hub", "postgres"}
    for node in NODES:
        assert services[node]["entrypoint"] == ["nats-server"]
        assert services[node]["command"] == ["-c", "/etc/nats/nats.conf"]
        assert "./deploy/nats.conf:/etc/nats/nats.conf:ro" in services[node]["volumes"]
        assert services[node]["environment"]["NATS_SERVER_NAME"] == node
    config = (ROOT / "deploy" / "nats.conf").read_text(encoding="utf-8")
    routes = {f"nats://{node}:6222" for node in NODES}
    assert all(route in config for route in routes) and "listen: 0.0.0.0:6222" in config


def test_the_hub_uses_every_node_and_replicates_its_streams_three_times() -> None:
    hub = compose()["services"]["hub"]
    assert hub["command"] == ["serve"]
    assert hub["environment"]["HUB_NATS_URL"].split(",") == [f"nats://{n}:4222" for n in NODES]
    assert hub["environment"]["HUB_REPLICAS"] == "3"
    assert {*NODES, "postgres"} <= set(hub["depends_on"])


def test_compose_gives_the_hub_a_postgresql_ledger_it_can_use() -> None:
    services = compose()["services"]
    url = services["hub"]["environment"]["HUB_LEDGER_URL"]
    assert url.startswith("postgresql://hub:") and url.endswith("@postgres:5432/hub")
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "hub"
    assert engine_url(url.replace("${HUB_DB_PASSWORD:?set HUB_DB_PASSWORD}", "secret")).startswith(
        "postgresql+asyncpg://hub:secret@postgres:5432/hub"
    )
    assert "postgres" in services["hub"]["depends_on"]


def test_the_nats_config_is_valid_for_the_shipped_nats_server_and_fsyncs_always() -> None:
    config = ROOT / "deploy" / "nats.conf"
    for node in NODES:
        env = {**os.environ, "NATS_SERVER_NAME": node}
        checked = subprocess.run(
            [BIN / "nats-server", "-t", "-c", config], capture_output=True, text=True, env=env
        )
        assert checked.returncode == 0, checked.stderr
    assert "sync_interval: always" in config.read_text(encoding="utf-8")
    assert "listen: 0.0.0.0:4222" in config.read_text(encoding="utf-8")


def test_the_hub_command_the_compose_file_runs_exists() -> None:
    shown = subprocess.run([BIN / "hub", "serve", "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "HUB_NATS_URL" in shown.stdout


def test_compose_environment_names_real_settings() -> None:
    names = {f"HUB_{name.upper()}" for name in HubSettings.model_fields}
    for service in ("hub",):
        assert set(compose()["services"][service].get("environment", {})) <= names


def test_the_image_contains_every_package_and_installs_the_project() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for package in ("hub", "schemas", "subscribers"):
        assert f"COPY {package} {package}" in dockerfile
    assert "pip install --no-cache-dir ." in dockerfile
    assert 'ENTRYPOINT ["hub"]' in dockerfile


def published(ports: list[str]) -> dict[str, str]:
    """Container port → the host address it is published on ("" for every interface)."""
    found = {}
    for entry in ports:  # "host:published:container" or "published:container"
        parts = entry.split(":")
        found[parts[-1]] = parts[0] if len(parts) == 3 else ""
    return found


def test_the_hub_web_server_is_reachable_from_the_host_and_checked_for_health() -> None:
    hub = compose()["services"]["hub"]
    assert hub["environment"]["HUB_WEB_HOST"] == "0.0.0.0"  # inside the container
    port = hub["environment"]["HUB_WEB_PORT"]
    assert published(hub["ports"]) == {port: "127.0.0.1"}
    probe = " ".join(hub["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/healthz" in probe


def test_nats_monitoring_is_published_on_the_host_loopback_only() -> None:
    for node in NODES:
        ports = published(compose()["services"][node]["ports"])
        assert ports["8222"] == "127.0.0.1", node
