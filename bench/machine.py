"""What the figures were measured on, and how repeated runs are summarised."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    """CPU, memory and versions of this run."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError as exc:  # not Linux: the table says so rather than guessing
        cpu = f"unknown ({exc.strerror})"
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    nats = subprocess.run(
        [str(Path(sys.executable).parent / "nats-server"), "--version"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "nats_server": nats,
        "code": code(),
    }


def code() -> str:
    """The commit measured (``BENCH_CODE`` when the run is not in a git checkout)."""
    if given := os.environ.get("BENCH_CODE"):
        return given
    root = Path(__file__).parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{commit} with uncommitted changes" if changed else commit or "unknown"


def _busy_s() -> float:
    """CPU seconds every process of the machine has used since boot (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _ours_s() -> float:
    """CPU seconds of this process and of its children that have ended (servers, hub, farms)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class OtherLoad:
    """How many cores other processes kept busy while a figure ran (0 on a quiet machine).

    Everything the benchmark starts is its child and is waited for, so the machine's busy time
    less ours is someone else's (another user's tests, a build …); on Linux only (else 0).
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.busy, self.ours = self._now()

    @staticmethod
    def _now() -> tuple[float, float]:
        try:
            return _busy_s(), _ours_s()
        except (OSError, ValueError):
            return 0.0, 0.0

    def cores(self) -> float:
        busy, ours = self._now()
        elapsed = time.perf_counter() - self.started
        other = (busy - self.busy) - (ours - self.ours)
        return max(other, 0.0) / elapsed if elapsed > 0 else 0.0


BUSY_CORES = 0.25  # other processes busier than this spoil a sample (a quiet machine: under 0.1)
QUIET_WAIT_S = 30.0  # how long to wait for a quiet second before measuring anyway
ATTEMPTS = 3  # a spoiled sample is measured again, at most this many attempts in all


async def quiet(within: float = QUIET_WAIT_S) -> None:
    """Wait, at most ``within`` seconds, for a second in which other processes leave us alone."""
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        load = OtherLoad()
        await asyncio.sleep(1.0)
        if load.cores() < BUSY_CORES:
            return


async def sampled(job: Callable[[], Awaitable[dict[str, float]]]) -> dict[str, float]:
    """One sample of ``job``, measured again (``ATTEMPTS`` in all) when other processes spoiled it.

    The machine may be shared (another user's tests, a build): the hub is CPU-bound on two cores,
    so their load would pass for the hub's. The sample records ``other_cores`` (the cores they
    kept busy while it ran) and ``spoiled`` (attempts thrown away); the last attempt is kept
    whatever its load, so the run's length stays bounded.
    """
    spoiled = 0
    while True:
        await quiet()
        load = OtherLoad()
        sample = await job()
        other = load.cores()
        print(f"    other processes kept {other:.2f} cores busy", flush=True)
        if other < BUSY_CORES or spoiled == ATTEMPTS - 1:
            return sample | {"other_cores": other, "spoiled": float(spoiled)}
        spoiled += 1
        print("    measured again", flush=True)


def summary(samples: list[float]) -> dict[str, float]:
    """min and median of repeated measurements."""
    return {"min": min(samples), "median": statistics.median(samples), "runs": len(samples)}


def save(name: str, document: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json``."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path
