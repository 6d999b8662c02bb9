"""docker-compose.yml cannot run here (no Docker engine), so test what it relies on."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from hub.config import HubSettings
from hub.ledger import engine_url
from hub.natsd import free_port, free_ports, http_get
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    )
    return loaded


NODES = ("nats-1", "nats-2", "nats-3")
HUBS = ("hub", "hub-2")  # two hub processes, active-active


def test_compose_runs_a_three_node_nats_cluster_with_the_shipped_config() -> None:
    services = compose()["services"]
    assert set(services) >= {*NODES, *HUBS, "postgres"}
    for node in NODES:
        assert services[node]["entrypoint"] == ["nats-server"]
        assert services[node]["command"] == ["-c", "/etc/nats/nats.conf"]
        assert "./deploy/nats.conf:/etc/nats/nats.conf:ro" in services[node]["volumes"]
        assert services[node]["environment"]["NATS_SERVER_NAME"] == node
    config = (ROOT / "deploy" / "nats.conf").read_text(encoding="utf-8")
    routes = {f"nats://{node}:6222" for node in NODES}
    assert all(route in config for route in routes) and "listen: 0.0.0.0:6222" in config


def test_two_hub_processes_use_every_node_and_replicate_their_streams_three_times() -> None:
    for name in HUBS:
        hub = compose()["services"][name]
        assert hub["command"] == ["serve"]
        assert hub["environment"]["HUB_NATS_URL"].split(",") == [f"tls://{n}:4222" for n in NODES]
        assert hub["environment"]["HUB_REPLICAS"] == "3"
        assert {*NODES, "postgres"} <= set(hub["depends_on"])
        assert hub["restart"] == "unless-stopped"
    first, second = (compose()["services"][name] for name in HUBS)
    assert first["environment"] == second["environment"]  # the same hub, twice


def test_compose_gives_the_hub_a_postgresql_ledger_it_can_use() -> None:
    services = compose()["services"]
    url = services["hub"]["environment"]["HUB_LEDGER_URL"]
    assert url.startswith("postgresql://hub:") and url.endswith("@postgres:5432/hub")
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "hub"
    assert engine_url(url.replace("${HUB_DB_PASSWORD:?set HUB_DB_PASSWORD}", "secret")).startswith(
        "postgresql+asyncpg://hub:secret@postgres:5432/hub"
    )
    assert "postgres" in services["hub"]["depends_on"]


def test_nats_listens_for_clients_and_routes_with_tls_and_trusts_only_the_operator() -> None:
    config = (ROOT / "deploy" / "nats.conf").read_text(encoding="utf-8")
    assert "sync_interval: always" in config and "listen: 0.0.0.0:4222" in config
    assert 'include "credentials/auth.conf"' in config  # relative to /etc/nats/nats.conf
    client_tls, cluster = config.split("cluster {")
    assert 'cert_file: "/etc/nats/credentials/tls/server.pem"' in client_tls.split("tls {")[1]
    assert "verify: true" in cluster.split("tls {")[1]
    assert "http: 127.0.0.1:8222" in config  # monitoring inside the container only


def test_the_store_is_encrypted_with_a_key_that_the_environment_must_give() -> None:
    config = (ROOT / "deploy" / "nats.conf").read_text(encoding="utf-8")
    jetstream = config.split("jetstream {")[1].split("}")[0]
    assert "cipher: chachapoly" in jetstream and "key: $JS_KEY" in jetstream
    for node in NODES:  # an empty JS_KEY would run the store in plaintext: compose refuses it
        assert compose()["services"][node]["environment"]["JS_KEY"].startswith("${JS_KEY:?")


def test_nats_refuses_the_shipped_config_without_the_key_in_its_environment(
    tmp_path: Path,
) -> None:
    ports = {"client": free_ports(3), "monitor": free_ports(3), "route": free_ports(3)}
    config = node_config(0, tmp_path, ports)
    env = {k: v for k, v in os.environ.items() if k != "JS_KEY"} | {"NATS_SERVER_NAME": "nats-1"}
    checked = subprocess.run(
        [BIN / "nats-server", "-t", "-c", config], env=env, capture_output=True, text=True
    )
    assert checked.returncode != 0
    assert "JS_KEY" in checked.stderr + checked.stdout


def test_the_hub_command_the_compose_file_runs_exists() -> None:
    shown = subprocess.run([BIN / "hub", "serve", "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "HUB_NATS_URL" in shown.stdout


def test_compose_environment_names_real_settings() -> None:
    names = {f"HUB_{name.upper()}" for name in HubSettings.model_fields}
    for service in HUBS:
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
    host_ports = set()
    for name in HUBS:
        hub = compose()["services"][name]
        assert hub["environment"]["HUB_WEB_HOST"] == "0.0.0.0"  # inside the container
        port = hub["environment"]["HUB_WEB_PORT"]
        assert published(hub["ports"]) == {port: "127.0.0.1"}
        probe = " ".join(hub["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/healthz" in probe
        host_ports |= {entry.split(":")[1] for entry in hub["ports"]}
    assert len(host_ports) == len(HUBS)  # each on a port of its own


def test_only_the_client_port_and_the_ops_page_are_published() -> None:
    services = compose()["services"]
    for node in NODES:
        assert set(published(services[node]["ports"])) == {"4222"}  # no monitoring, no routes
    for name in HUBS:
        assert published(services[name]["ports"]) == {"8080": "127.0.0.1"}
    assert "ports" not in services["postgres"] and "ports" not in services["credentials"]


def test_every_service_that_talks_to_nats_has_the_credentials_and_the_tls_ca() -> None:
    services = compose()["services"]
    hub = services["hub"]["environment"]
    assert hub["HUB_CREDENTIALS_DIR"] == "/credentials"
    assert hub["HUB_TLS_CA"] == "/credentials/tls/ca.pem"
    assert all(url.startswith("tls://") for url in hub["HUB_NATS_URL"].split(","))
    assert hub["HUB_OPS_PASSWORD"] == "${HUB_OPS_PASSWORD:?set HUB_OPS_PASSWORD}"
    assert "credentials:/credentials:ro" in services["hub"]["volumes"]
    for node in NODES:  # beside nats.conf, whose include is relative to it
        assert "credentials:/etc/nats/credentials:ro" in services[node]["volumes"], node
    for node in NODES:
        assert services[node]["depends_on"]["credentials"] == {
            "condition": "service_completed_successfully"
        }


def credentials_command() -> str:
    """The shell command the compose file's credentials service runs."""
    command: list[str] = compose()["services"]["credentials"]["command"]
    return " ".join(command)


def node_config(i: int, where: Path, ports: dict[str, list[int]]) -> Path:
    """deploy/nats.conf for node ``i`` on loopback: the county's files in ``where``, free ports."""
    text = (ROOT / "deploy" / "nats.conf").read_text(encoding="utf-8")
    text = text.replace("/etc/nats/credentials", str(where / "credentials"))
    text = text.replace("store_dir: /data", f"store_dir: {where / f'node-{i}'}")
    text = text.replace("0.0.0.0:4222", f"127.0.0.1:{ports['client'][i]}")
    text = text.replace("127.0.0.1:8222", f"127.0.0.1:{ports['monitor'][i]}")
    text = text.replace("0.0.0.0:6222", f"127.0.0.1:{ports['route'][i]}")
    for j, node in enumerate(NODES):
        text = text.replace(f"nats://{node}:6222", f"nats://127.0.0.1:{ports['route'][j]}")
    path = where / f"node-{i}.conf"
    path.write_text(text, encoding="utf-8")
    return path


async def run(*args: str | Path, env: dict[str, str]) -> tuple[int, str, str]:
    """A command to its end: exit code, output, errors."""
    process = await asyncio.create_subprocess_exec(
        *(str(a) for a in args),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_compose_topology_runs_from_its_own_files_with_authorization_and_tls(
    tmp_path: Path,
) -> None:
    """The credentials service's commands, deploy/nats.conf on three loopback nodes, hub serve with
    the compose file's environment; then an organisation is issued credentials and publishes."""
    store = tmp_path / "credentials"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    env |= compose()["services"]["credentials"]["environment"] | {"HUB_CREDENTIALS_DIR": str(store)}
    command = credentials_command().replace("/credentials", str(store))  # the volume, here
    code, _, err = await run("sh", "-c", command, env=env)
    assert code == 0, err
    auth = store / "auth.conf"
    auth.write_text(auth.read_text().replace("/data/jwt", str(tmp_path / "jwt")))
    free = free_ports(9)
    ports = {"client": free[0:3], "monitor": free[3:6], "route": free[6:9]}
    nodes = []
    key = secrets.token_hex(32)  # what the county's .env gives every node
    for i, node in enumerate(NODES):
        config = node_config(i, tmp_path, ports)
        node_env = {**os.environ, "NATS_SERVER_NAME": node, "JS_KEY": key}
        code, _, err = await run(BIN / "nats-server", "-t", "-c", config, env=node_env)
        assert code == 0, err
        nodes.append(
            await asyncio.create_subprocess_exec(
                str(BIN / "nats-server"), "-c", str(config), env=node_env
            )
        )
    hub_env = {
        **os.environ,
        **{k: str(v) for k, v in compose()["services"]["hub"]["environment"].items()},
        "HUB_NATS_URL": ",".join(f"tls://127.0.0.1:{p}" for p in ports["client"]),
        "HUB_CREDENTIALS_DIR": str(store),
        "HUB_TLS_CA": str(store / "tls" / "ca.pem"),
        "HUB_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",  # no postgres service here
        "HUB_WEB_PORT": str(free_port()),
        "HUB_OPS_PASSWORD": "县运维口令",
        "HUB_DATA_DIR": str(tmp_path),
    }
    hub = None
    try:
        for port in ports["monitor"]:
            await eventually(functools.partial(_healthy, port), within=30)
        hub = await asyncio.create_subprocess_exec(str(BIN / "hub"), "serve", env=hub_env)
        await eventually(lambda: _ready(f"http://127.0.0.1:{hub_env['HUB_WEB_PORT']}"), 60)
        creds = tmp_path / "scjg.creds"
        code, _, err = await run(
            BIN / "hub", "credentials", "issue", "renqiu-scjg", "--out", creds, env=hub_env
        )
        assert code == 0, err
        _, example, _ = await run(
            BIN / "hub", "example", "other", "--as", "renqiu-scjg", env=hub_env
        )
        (tmp_path / "event.json").write_text(example)
        code, out, err = await run(
            *(BIN / "hub", "publish", tmp_path / "event.json", "--as", "renqiu-scjg"),
            env={**hub_env, "HUB_CREDENTIALS": str(creds)},
        )
    finally:
        for process in [p for p in (hub, *nodes) if p is not None]:
            process.terminate()
            await process.wait()
    assert code == 0, err
    assert "已受理" in out
    event_id = json.loads(example)["id"].encode()  # in the stored event and its headers
    stored = [f for i in range(len(NODES)) for f in (tmp_path / f"node-{i}").rglob("*")]
    assert len([f for f in stored if f.is_file()]) > 10  # the streams were written here
    assert [f for f in stored if f.is_file() and event_id in f.read_bytes()] == []


async def _healthy(port: int) -> bool:
    status, _ = await http_get("127.0.0.1", port, "/healthz")
    return status == 200


async def _ready(web: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"{web}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False
