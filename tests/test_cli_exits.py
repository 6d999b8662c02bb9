"""Every error a user can make ends in a message and a documented exit code, never a traceback.

0 done or accepted · 1 rejected, or a check found a problem · 2 usage or configuration ·
3 NATS, the hub or the ledger database unavailable (the README's table).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.config import HubSettings
from hub.natsd import free_port
from hub.samples import sample_event
from hub.service import Hub
from tests.helpers import run_hub

pytestmark = pytest.mark.connected


async def hub_command(
    settings: HubSettings, *args: str, deadline_s: float = 60, **env: str
) -> tuple[int, str, str]:
    """Run ``hub``; whatever happens, no traceback reaches the user."""
    code, out, err = await run_hub(settings, *args, deadline_s=deadline_s, **env)
    assert "Traceback" not in out + err, err
    return code, out, err


@contextmanager
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def event_file(tmp_path: Path, **changes: object) -> Path:
    event = sample_event("other", "renqiu-scjg", datetime.now(UTC)) | changes
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event, ensure_ascii=False), encoding="utf-8")
    return path


async def test_publish_exits_0_when_accepted_and_1_when_rejected(hub: Hub, tmp_path: Path) -> None:
    good = await hub_command(
        hub.settings, "publish", str(event_file(tmp_path)), "--as", "renqiu-scjg"
    )
    bad = await hub_command(
        hub.settings, "publish", str(event_file(tmp_path, type="nosuch.v1")), "--as", "renqiu-scjg"
    )
    assert good[0] == 0 and "已受理" in good[1]
    assert bad[0] == 1 and "事件类型 nosuch.v1 不存在" in bad[2]


async def test_publish_of_a_missing_file_or_a_directory_exits_2(
    settings: HubSettings, tmp_path: Path
) -> None:
    missing = await hub_command(
        settings, "publish", str(tmp_path / "missing.json"), "--as", "renqiu-scjg"
    )
    directory = await hub_command(settings, "publish", str(tmp_path), "--as", "renqiu-scjg")
    assert missing[0] == 2 and "找不到事件文件" in missing[2] and "missing.json" in missing[2]
    assert directory[0] == 2 and "是目录" in directory[2]


async def test_an_unreachable_nats_exits_3_naming_the_address(
    settings: HubSettings, tmp_path: Path
) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    code, _, err = await hub_command(
        settings, "publish", str(event_file(tmp_path)), "--as", "renqiu-scjg", HUB_NATS_URL=url
    )
    assert code == 3 and f"连不上 NATS 服务器 {url}" in err


@pytest.mark.parametrize("command", [("dashboard", "--port", "0"), ("tail", "--ack")])
async def test_a_server_without_the_hub_exits_3_saying_so(
    settings: HubSettings, command: tuple[str, ...]
) -> None:
    # the session's server has no streams under this test's root: no hub runs there
    code, _, err = await hub_command(settings, *command, "--as", "renqiu-chuan")
    assert code == 3 and "没有枢纽的" in err and settings.subject_root in err


async def test_a_postgresql_that_is_down_is_a_ledger_problem_not_a_nats_one(
    settings: HubSettings,
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    code, _, err = await hub_command(
        settings, "report", "daily", "--date", "2026-11-26", HUB_LEDGER_URL=url
    )
    assert code == 3 and "台账数据库" in err and "NATS" not in err


async def test_an_sqlite_ledger_in_a_missing_directory_exits_2(
    settings: HubSettings, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'ledger.sqlite3'}"
    code, _, err = await hub_command(settings, "lag", HUB_LEDGER_URL=url)
    assert code == 2 and "无法打开 SQLite 文件" in err


async def test_a_busy_web_port_exits_2_naming_the_setting(settings: HubSettings) -> None:
    with busy_port() as port:
        code, _, err = await hub_command(settings, "serve", HUB_WEB_PORT=str(port))
    assert code == 2 and "HUB_WEB_PORT" in err and str(port) in err


async def test_a_malformed_setting_exits_2(settings: HubSettings) -> None:
    code, _, err = await hub_command(settings, "lag", HUB_MAX_DELIVER="many")
    assert code == 2 and "HUB_* 设置有误" in err and "max_deliver" in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("lag", "--county", "nosuch"), "renqiu（任丘市）、huanghua（黄骅市）"),
        (("lag", "--category", "nosuch"), "可选：law_change（法规调整）"),
        (("registry", "list", "--county", "nosuch"), "renqiu（任丘市）、huanghua（黄骅市）"),
        (
            ("report", "daily", "--date", "2026-11-26", "--county", "nosuch"),
            "没有县（市、区）nosuch",
        ),
        (
            ("report", "org", "renqiu-scjg", "--from", "2026-11-30", "--to", "2026-11-01"),
            "--from 2026-11-30 晚于 --to 2026-11-01",
        ),
        (("example", "permit", "--as", "renqiu-scj"), "是不是 renqiu-scjg"),
        (("example", "nosuch", "--as", "renqiu-scjg"), "没有信息类别 nosuch"),
        (("tail", "--as", "nosuch-org"), "nosuch-org 不在组织登记簿中"),
    ],
)
async def test_a_filter_that_matches_nothing_is_refused_with_the_choices(
    settings: HubSettings, args: tuple[str, ...], expected: str
) -> None:
    code, out, err = await hub_command(settings, *args)
    assert code == 2 and expected in err and not out
