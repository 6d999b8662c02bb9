"""How long ``hub serve`` takes to start with 20, 200 and 2,000 organisations.

    python -m bench.startup [--quick] [--security auth+tls] [--runs 3] [--before COMMIT] [--once]

For each size, a registry of counties of one department and 20 townships (``bench.suite``'s
synthetic registry), a fresh nats-server (fsync always), then ``hub serve`` as a process of its
own twice: ``fresh`` (no stream or consumer exists yet) and ``restart`` (stopped with SIGTERM and
started again against everything the first start made). Start-up is from the process's start to
its ``hub.ready`` log line (the time of each is read from the same clock), so it includes the
interpreter, the imports, the connections, the ledger and the provisioning of streams, consumers
and buckets; provisioning's own share comes from its ``provisioning.done`` line. When the hub
leaves organisations' consumers to be written after it is ready (fan-out paused meanwhile), the
time until the last exists is its ``consumers.caught_up`` line; the JetStream API requests the
server answered until then come from its ``/jsz``. The hub's CPU seconds at ``hub.ready`` are
given too: on a machine other processes keep busy they stay what the start costs. Results go to
``bench/results/startup.json`` and the table to ``bench/README.md``.

``--before COMMIT`` measures that commit's ``hub serve`` (a ``git worktree``, as ``bench.audit``
does) beside this checkout's, taking turns, so both see the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from bench.audit import ROOT, Variant
from bench.configs import AUTH_TLS, CONFIGS, Config, Credentials
from bench.machine import ATTEMPTS, OtherLoad, machine, sampled, save, summary
from bench.security import Job
from bench.suite import BIN, nats_server, synthetic_registry, until
from bench.tables import DASH, SCALES, finish, measured, publish_saved
from hub.natsd import NatsServer, http_get
from hub.registry import load_registry

START, END = (
    "<!-- startup: written by python -m bench.startup -->",
    "<!-- end of startup -->",
)
READY_WITHIN_S = 600.0
PHASES = ("fresh", "restart")
THIS = "this"  # the code of this checkout, beside ``--before COMMIT``


async def api_requests(server: NatsServer) -> int:
    """JetStream API requests the server has answered since it started."""
    status, body = await http_get(server.monitor_host, server.monitor_port, "/jsz")
    if status != 200:
        raise RuntimeError(f"/jsz answered {status}")
    return int(json.loads(body)["api"]["total"])


def log_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines the hub wrote so far (anything else, a traceback say, is skipped)."""
    lines = []
    for text in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines


def at(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(line["ts"]).timestamp()


@asynccontextmanager
async def hub_serve(
    config: Config, server: NatsServer, data: Path, registry: Path, log: Path
) -> AsyncIterator[dict[str, float]]:
    """``hub serve`` until the body ends; yields its start-up figures once it is ready."""
    env = config.hub_env(server.url) | {
        "HUB_DATA_DIR": str(data),
        "HUB_REGISTRY": str(registry),
        "HUB_LOG_LEVEL": "INFO",
        "HUB_WEB_PORT": "0",
    }
    before = await api_requests(server)
    with log.open("w", encoding="utf-8") as stderr:
        spawned = time.time()  # the log's clock: its lines carry wall-clock times
        process = await asyncio.create_subprocess_exec(
            str(BIN / "hub"), "serve", env=env, stderr=stderr
        )
        async with child_process(process):
            ready: dict[str, Any] = {}

            async def is_ready() -> bool:
                if process.returncode is not None:
                    raise RuntimeError(f"hub serve exited {process.returncode}: see {log}")
                for line in log_lines(log):
                    ready.setdefault(line["event"], line)
                return "hub.ready" in ready

            await until(is_ready, within=READY_WITHIN_S, every=0.05)
            cpu = psutil.Process(process.pid).cpu_times()
            done = ready.get("provisioning.done", {})
            deferred = int(done.get("deferred", 0))
            if deferred:  # written after the start, fan-out paused meanwhile

                async def caught_up() -> bool:
                    return await is_ready() and "consumers.caught_up" in ready

                await until(caught_up, within=READY_WITHIN_S, every=0.05)
            consumers = ready.get("consumers.caught_up", ready["hub.ready"])
            yield {
                "startup_s": at(ready["hub.ready"]) - spawned,
                "startup_cpu_s": cpu.user + cpu.system,  # the hub's own, whatever else runs
                "consumers_s": at(consumers) - spawned,
                "provisioning_s": float(done.get("seconds", 0.0)),
                "consumers_written": float(int(done.get("written", 0)) + deferred),
                "api_requests": float(await api_requests(server) - before),
            }


@asynccontextmanager
async def child_process(process: asyncio.subprocess.Process) -> AsyncIterator[None]:
    try:
        yield
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), timeout=60)


async def startup(config: Config, registry: Path) -> dict[str, float]:
    """One fresh start and one restart of the hub with ``registry``, on a new server."""
    figures: dict[str, float] = {"organisations": float(len(load_registry(registry)))}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
        data = Path(folder)
        async with nats_server(config, True) as server:
            for phase in PHASES:
                async with hub_serve(config, server, data, registry, data / f"{phase}.log") as f:
                    figures |= {f"{phase}_{k}": v for k, v in f.items()}
    return figures


@contextmanager
def checkout(commit: str, folder: Path) -> Iterator[Path]:
    """A ``git worktree`` of ``commit``, removed afterwards."""
    tree, git = folder / "tree", ["git", "-C", str(ROOT), "worktree"]
    subprocess.run([*git, "add", "--detach", str(tree), commit], check=True, capture_output=True)
    try:
        yield tree
    finally:
        subprocess.run([*git, "remove", "--force", str(tree)], check=False)


async def once(job: Job) -> dict[str, float]:
    """One sample whatever the machine's load (``--once``); the load is recorded."""
    load = OtherLoad()
    sample = await job()
    return sample | {"other_cores": load.cores(), "spoiled": 0.0}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every size ``runs`` times, the sizes and the code measured taking turns; saved as it goes."""
    began = time.perf_counter()
    full = args.runs >= 3 and args.sizes == SCALES
    name = "startup" if full else "startup-quick"
    results: dict[str, Any] = {
        "machine": machine(),
        "runs": args.runs,
        "security": args.security,
        "before": args.before,
        "once": args.once,
    }
    samples: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder, ExitStack() as trees:
        credentials = Credentials.create(Path(folder))
        variants = [Variant(args.security, credentials, label=THIS)]
        if args.before:
            tree = trees.enter_context(checkout(args.before, Path(folder)))
            variants.append(Variant(args.security, credentials, label=args.before, tree=tree))
        registries = {}
        for scale in args.sizes:
            registries[scale] = Path(folder) / f"registry-{scale}.toml"
            synthetic_registry(registries[scale], scale)
            credentials.issue(load_registry(registries[scale]))
        for n in range(args.runs):
            for scale in args.sizes:
                for v in variants[n % len(variants) :] + variants[: n % len(variants)]:
                    key = f"{scale}, {v.label}"
                    print(f"  {key} ({n + 1}/{args.runs}) …", flush=True)
                    job = partial(startup, v, registries[scale])
                    sample = await (once(job) if args.once else sampled(job))
                    samples.setdefault(key, []).append(sample)
                    results[key] = {k: summary([s[k] for s in samples[key]]) for k in sample} | {
                        "samples": samples[key]
                    }
                    save(name, results)
    results["took_s"] = round(time.perf_counter() - began, 1)
    save(name, results)
    return results


def render(results: dict[str, Any]) -> str:
    """The start-up figures as a Markdown table (min / median of the runs)."""

    def cell(figure: dict[str, Any], key: str, fmt: str = "{:.2f}") -> str:
        s = figure.get(key, figure["fresh_startup_s"])  # before the hub deferred: at ready
        return f"{fmt.format(s['min'])} / {fmt.format(s['median'])}"

    def median(figure: dict[str, Any], key: str, fmt: str = "{:.2f}") -> str:
        return fmt.format(figure[key]["median"]) if key in figure else DASH

    said = measured(results)
    if results.get("once"):
        said = said.replace(f"(after {ATTEMPTS} attempts)", "(one attempt each: `--once`)")
    out = [
        said + f" Security `{results['security']}`, fsync always;"
        f" the run took {results.get('took_s', 0) / 60:.0f} min.",
        "",
        "| organisations | code | start-up, fresh, s | every consumer written, fresh, s"
        " | restart, s | hub CPU at start-up, fresh / restart, s (median)"
        " | JetStream API requests, fresh / restart |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = [k for k in results if ", " in k and k.split(", ")[0].isdigit()]
    for key in sorted(keys, key=lambda k: (int(k.split(", ")[0]), k.split(", ")[1] == THIS)):
        scale, label = key.split(", ", 1)
        label = results["machine"]["code"] if label == THIS else f"{label} (before)"
        figure = results[key]
        out.append(
            f"| {int(scale):,} | {label} | {cell(figure, 'fresh_startup_s')}"
            f" | {cell(figure, 'fresh_consumers_s')} | {cell(figure, 'restart_startup_s')}"
            f" | {median(figure, 'fresh_startup_cpu_s')}"
            f" / {median(figure, 'restart_startup_cpu_s')}"
            f" | {median(figure, 'fresh_api_requests', '{:,.0f}')}"
            f" / {median(figure, 'restart_api_requests', '{:,.0f}')} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one run, 20 and 200 organisations")
    parser.add_argument("--security", choices=CONFIGS, default=AUTH_TLS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--sizes", type=lambda s: tuple(int(n) for n in s.split(",")), default=SCALES
    )
    parser.add_argument("--before", metavar="COMMIT", help="measure COMMIT's hub beside this one")
    parser.add_argument(
        "--once", action="store_true", help="one attempt per sample, however busy the machine"
    )
    args = parser.parse_args()
    if args.quick:
        args.runs, args.sizes = 1, SCALES[:2]
    results = asyncio.run(run(args))
    full = args.runs >= 3 and args.sizes == SCALES
    finish("startup", results, render, full, (START, END))


def render_saved() -> None:
    """Write the table of the last full run from its JSON."""
    publish_saved("startup", render, (START, END))


if __name__ == "__main__":
    main()
