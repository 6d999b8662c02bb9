"""The SDK installs on its own (``sdk/``) and works against a running hub, without the hub's code.

A fresh virtual environment gets only the SDK's wheel and what it declares; a script run there,
from outside the repository, publishes as one organisation and receives as another.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.identity import org_credentials_path
from hub.ledger import DeliveryState
from hub.registry import Registry
from hub.samples import sample_event
from hub.service import Hub
from tests.helpers import eventually

pytestmark = [pytest.mark.connected, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent
PUBLISHER, RECIPIENT = "renqiu-scjg", "renqiu-chuan"

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path

    from schemas.wire import Wire
    from subscribers import Publisher, Recipient, connect

    url, root, sender, sender_creds, reader, reader_creds, event = sys.argv[1:8]

    async def main() -> None:
        wire = Wire(root)
        nc = await connect(url, name="sdk-test", credentials=Path(sender_creds), attempts=3)
        accepted = await Publisher(nc, sender, wire=wire).publish(json.loads(event))
        got = []
        done = asyncio.Event()

        async def handle(received, delivery):
            got.append(received.key)
            done.set()

        rc = await connect(url, name="sdk-test-reader", credentials=Path(reader_creds), attempts=3)
        recipient = Recipient(rc, reader, wire=wire)
        task = asyncio.create_task(recipient.run(handle, done))
        await asyncio.wait_for(task, 30)
        print(json.dumps({"accepted": accepted.id, "received": got}))
        await nc.close()
        await rc.close()

    asyncio.run(main())
    """
)


@pytest.fixture(scope="module")
def sdk_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the SDK wheel and its declared dependencies only."""
    where = tmp_path_factory.mktemp("sdk")
    wheels = where / "wheels"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", wheels, ROOT / "sdk"], check=True)
    subprocess.run([sys.executable, "-m", "venv", where / "venv"], check=True)
    python = where / "venv" / "bin" / "python"
    [wheel] = wheels.glob("*.whl")
    subprocess.run([python, "-m", "pip", "install", "-q", wheel], check=True)
    return python


def test_the_sdk_brings_no_hub_and_only_its_own_dependencies(sdk_python: Path) -> None:
    shown = subprocess.run(
        [sdk_python, "-c", "import subscribers, schemas; import hub"],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert "No module named 'hub'" in shown.stderr  # the SDK imported, the hub is not there
    installed = subprocess.run(
        [sdk_python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True
    )
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert "zhifa-hub-sdk" in names
    assert not names & {"faststream", "sqlalchemy", "asyncpg", "uvicorn", "starlette", "typer"}


async def test_a_system_with_only_the_sdk_publishes_and_receives(
    sdk_python: Path, hub: Hub, registry: Registry
) -> None:
    settings = hub.settings
    event = sample_event("other", PUBLISHER, datetime.now(UTC), 1, recipients=(RECIPIENT,))
    process = await asyncio.create_subprocess_exec(
        sdk_python,
        "-c",
        SCRIPT,
        settings.nats_url or "",
        settings.subject_root,
        PUBLISHER,
        str(org_credentials_path(settings, PUBLISHER)),
        RECIPIENT,
        str(org_credentials_path(settings, RECIPIENT)),
        json.dumps(event, ensure_ascii=False),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd="/",
    )
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["received"] == [f"{PUBLISHER}/{result['accepted']}"]

    async def acknowledged() -> bool:
        counts = await hub.ledger.counts()
        return counts.get(DeliveryState.ACKNOWLEDGED, 0) == 1

    await eventually(acknowledged, within=15)
