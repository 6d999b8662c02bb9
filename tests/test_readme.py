"""The README's own commands, typed as a new user would, against a running ``hub up``.

Every ``.venv/bin/hub …`` line of the README's ``sh`` blocks runs in order, literally, from a fresh
directory (where ``.venv`` is this environment): it must end with the exit code its comment
documents (``exit N``; 0 when none is named) and never print a traceback. A line whose comment
says ``Ctrl-C`` runs until it has shown something, then gets SIGINT, as a person would press it.
Only ports are changed (to free ones), so that the test never depends on 8080 or 8082 being free.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.natsd import free_port
from tests.helpers import eventually

pytestmark = [pytest.mark.connected, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(
    r"^(?P<command>(?:[A-Z_]+=\S+ )*\.venv/bin/hub [^#]*?)\s*(?:#\s*(?P<comment>.*))?$"
)
ASSIGNMENTS = re.compile(r"^((?:[A-Z_]+=\S+ )*)(.*)$")


@dataclass(frozen=True)
class Command:
    """One line of the README."""

    text: str
    exit_code: int
    until_ctrl_c: bool


def readme_commands() -> list[Command]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"```sh\n(.*?)```", readme, re.S):
        for line in block.splitlines():
            if matched := LINE.match(line.strip()):
                comment = matched["comment"] or ""
                code = re.search(r"exit (\d)", comment)
                found.append(
                    Command(matched["command"], int(code[1]) if code else 0, "Ctrl-C" in comment)
                )
    return found


def test_the_readme_documents_commands_to_walk() -> None:
    commands = readme_commands()
    assert len(commands) >= 10
    assert any(c.exit_code == 1 for c in commands) and any(c.until_ctrl_c for c in commands)


async def run_line(command: Command, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    text = re.sub(r"--port \d+", lambda _: f"--port {free_port()}", command.text)
    assignments, rest = ASSIGNMENTS.match(text).groups()  # type: ignore[union-attr]
    exports = "".join(f"export {a}; " for a in assignments.split())
    process = await asyncio.create_subprocess_shell(
        f"{exports}exec {rest}",  # the shell becomes the command: Ctrl-C (SIGINT) reaches it
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    if command.until_ctrl_c:
        async with asyncio.timeout(30):
            first = await process.stdout.readline()  # it runs and shows something
        process.send_signal(signal.SIGINT)
    else:
        first = b""
    async with asyncio.timeout(90):
        out, err = await process.communicate()
    return process.returncode or 0, (first + out + err).decode(errors="replace")


async def test_every_command_of_the_readme_works_as_documented(tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {"HUB_WEB_PORT": "0", "HUB_DASHBOARD_PORT": "0"}
    demo = await asyncio.create_subprocess_exec(
        str(tmp_path / ".venv" / "bin" / "hub"),
        "up",
        "--interval",
        "0.5",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,  # never read: a full pipe must not stall the demo
        stderr=asyncio.subprocess.PIPE,
    )
    outcomes: list[tuple[str, int, int, str]] = []
    try:
        await eventually(lambda: (tmp_path / "var" / "nats.url").exists(), within=60)
        await eventually(lambda: (tmp_path / "var" / "ledger.sqlite3").exists(), within=30)
        for command in readme_commands():
            code, output = await run_line(command, tmp_path, env)
            outcomes.append((command.text, command.exit_code, code, output))
    finally:
        demo.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            _, demo_err = await demo.communicate()
    failed = [
        (text, expected, code, output[-500:])
        for text, expected, code, output in outcomes
        if code != expected or "Traceback" in output
    ]
    assert failed == []
    assert demo.returncode == 0 and b"Traceback" not in demo_err, demo_err.decode()[-2000:]
