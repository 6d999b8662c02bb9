"""More hub processes beside this one: ``hub serve --workers N`` and ``hub up --hubs N``.

Each worker is a ``hub serve`` of its own (a process: a core and an event loop of its own) with
the same settings; they share the work as any hub processes against one NATS cluster do (see
``hub.roles``). Worker ``i``'s ops page listens on ``HUB_WEB_PORT + i``. A worker that dies is
started again after a pause (a supervisor such as systemd or compose does the same for the first
one); on stop each gets SIGTERM, finishes its batches and releases its roles.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from hub.config import HubSettings

log = logging.getLogger(__name__)

RESTART_PAUSE_S = 1.0
STOP_WAIT_S = 30.0
COMMAND = (sys.executable, "-c", "from hub.cli import main; main()", "serve")


def worker_environment(settings: HubSettings, index: int, **overrides: str) -> dict[str, str]:
    """The environment of worker ``index`` (1, 2, …): this one's, its own ops page port."""
    env = {**os.environ, **overrides}
    if settings.web_port:  # 0: each takes a free port anyway
        env["HUB_WEB_PORT"] = str(settings.web_port + index)
    return env


async def run_workers(
    settings: HubSettings,
    count: int,
    stop: asyncio.Event,
    *,
    log_dir: Path | None = None,
    **overrides: str,
) -> None:
    """Keep ``count`` more ``hub serve`` processes running until ``stop``.

    ``log_dir``: each worker's output goes to ``hub-<i>.log`` there (else to this one's stderr);
    ``overrides``: HUB_* settings that differ from this process's environment.
    """
    async with asyncio.TaskGroup() as tasks:
        for index in range(1, count + 1):
            env = worker_environment(settings, index, **overrides)
            output = None if log_dir is None else log_dir / f"hub-{index}.log"
            tasks.create_task(_keep_running(index, env, output, stop))


async def _keep_running(
    index: int, env: dict[str, str], output: Path | None, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        sink = None if output is None else output.open("ab")
        try:
            process = await asyncio.create_subprocess_exec(
                *COMMAND, env=env, stdout=sink, stderr=sink
            )
        finally:
            if sink is not None:
                sink.close()  # the worker holds its own copy
        log.info("worker.started", extra={"worker": index, "pid": process.pid})
        waiting = asyncio.create_task(process.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait((waiting, stopping), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if stop.is_set():
            await _stop(process, waiting)
            return
        log.error("worker.exited", extra={"worker": index, "code": process.returncode})
        try:
            async with asyncio.timeout(RESTART_PAUSE_S):
                await stop.wait()
        except TimeoutError:
            continue


async def _stop(process: asyncio.subprocess.Process, waiting: asyncio.Task[int]) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_WAIT_S):
            await waiting
    except TimeoutError:
        log.error("worker.unresponsive", extra={"pid": process.pid})
        process.kill()
        await waiting
