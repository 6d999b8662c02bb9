"""The ``hub`` command as a user runs it: a separate process, real exit codes, real output."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.config import HubSettings
from hub.ledger import DeliveryState
from hub.samples import sample_event
from hub.service import Hub
from hub.timeliness import shanghai_day
from schemas.envelope import CASE_TYPES, EVENT_TYPES
from tests.conftest import Orgs
from tests.helpers import eventually, receiving, run_hub

pytestmark = pytest.mark.connected


def write_event(tmp_path: Path, event: dict[str, object]) -> Path:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event, ensure_ascii=False), encoding="utf-8")
    return path


async def test_publish_of_a_rejected_event_exits_nonzero_printing_each_error(
    hub: Hub, tmp_path: Path
) -> None:
    event = sample_event("permit", "renqiu-scjg", datetime.now(UTC))
    event["data"]["entity_uscc"] = "91130982MA0D4XXK3Y"
    del event["data"]["permit_name"]
    code, out, err = await run_hub(
        hub.settings, "publish", str(write_event(tmp_path, event)), "--as", "renqiu-scjg"
    )
    assert code == 1, (out, err)
    assert "拒收" in err and "隔离区" in err
    assert "data.entity_uscc: 统一社会信用代码校验码错误：末位为 Y，应为 L" in err
    assert "data.permit_name: 必填字段缺失" in err


async def test_publish_of_a_valid_event_prints_the_acceptance(hub: Hub, tmp_path: Path) -> None:
    event = sample_event("law_change", "renqiu-scjg", datetime.now(UTC))
    code, out, err = await run_hub(
        hub.settings, "publish", str(write_event(tmp_path, event)), "--as", "renqiu-scjg"
    )
    assert code == 0, err
    assert f"已受理（accepted）：renqiu-scjg/{event['id']} 序号 1" in out
    assert "接收单位 19 个" in out


async def test_publish_as_someone_else_is_refused(hub: Hub, tmp_path: Path) -> None:
    event = sample_event("permit", "renqiu-scjg", datetime.now(UTC))
    code, _, err = await run_hub(
        hub.settings, "publish", str(write_event(tmp_path, event)), "--as", "renqiu-zjj"
    )
    assert code == 1 and "只能以本单位名义发布" in err


async def test_example_output_publishes_as_is(hub: Hub, tmp_path: Path) -> None:
    code, out, _ = await run_hub(
        hub.settings, "example", "inspection_record", "--as", "renqiu-chuan"
    )
    assert code == 0
    path = tmp_path / "example.json"
    path.write_text(out, encoding="utf-8")
    code, out, err = await run_hub(hub.settings, "publish", str(path), "--as", "renqiu-chuan")
    assert code == 0, err


async def test_times_a_person_reads_are_beijing_time(hub: Hub, tmp_path: Path) -> None:
    code, out, _ = await run_hub(hub.settings, "example", "permit", "--as", "renqiu-scjg")
    assert code == 0 and json.loads(out)["time"].endswith("+08:00")
    good = tmp_path / "good.json"
    good.write_text(out, encoding="utf-8")
    assert (await run_hub(hub.settings, "publish", str(good), "--as", "renqiu-scjg"))[0] == 0
    bad = sample_event("permit", "renqiu-scjg", datetime.now(UTC))
    bad["data"]["entity_uscc"] = "91130982MA0D4XXK3Y"
    await run_hub(hub.settings, "publish", str(write_event(tmp_path, bad)), "--as", "renqiu-scjg")
    _, tailed, _ = await run_hub(
        hub.settings, "tail", "--as", "renqiu-qingta", "--from-start", "--count", "1"
    )
    _, listed, _ = await run_hub(hub.settings, "quarantine", "list")
    when = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
    assert re.search(f"发布于 {when}]", tailed) and "+00:00" not in tailed
    assert re.search(f"#1 {when} ", listed) and "+00:00" not in listed


async def test_tail_shows_what_was_delivered_to_the_organisation(hub: Hub, tmp_path: Path) -> None:
    event = sample_event("permit", "renqiu-scjg", datetime.now(UTC))
    code, _, err = await run_hub(
        hub.settings, "publish", str(write_event(tmp_path, event)), "--as", "renqiu-scjg"
    )
    assert code == 0, err
    code, out, err = await run_hub(
        hub.settings, "tail", "--as", "renqiu-qingta", "--from-start", "--count", "1"
    )
    assert code == 0, err
    assert "行政许可和监督管理信息 · 任丘市市场监督管理局 → 任丘市青塔乡人民政府" in out
    assert "任丘市鸿运食品有限公司 食品经营许可 准予许可" in out


async def test_schemas_export_writes_one_json_schema_per_event_type_and_wire_message(
    settings: HubSettings, tmp_path: Path
) -> None:
    code, _, err = await run_hub(settings, "schemas", "export", str(tmp_path / "out"))
    assert code == 0, err
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    wire = ("receipt-batch", "ingest-reply", "delivery-bundle")
    assert written == sorted(f"{t}.json" for t in (*EVENT_TYPES, *CASE_TYPES, *wire))
    permit = json.loads((tmp_path / "out" / "permit.v1.json").read_text(encoding="utf-8"))
    assert permit["$defs"]["Permit"]["properties"]["entity_uscc"]["description"].startswith(
        "统一社会信用代码"
    )
    assert "data" in permit["required"]
    transfer = json.loads((tmp_path / "out" / "case_transfer.v1.json").read_text(encoding="utf-8"))
    assert transfer["title"].startswith("case_transfer.v1：案件移交")
    assert transfer["$defs"]["CaseTransfer"]["properties"]["attachments"]["minItems"] == 3


async def test_registry_check_names_the_problem_and_exits_2(
    settings: HubSettings, tmp_path: Path
) -> None:
    broken = tmp_path / "bad.toml"
    broken.write_text('prefecture = "沧州市"\nprefecture_code = "13"\n', encoding="utf-8")
    code, _, err = await run_hub(settings, "registry", "check", str(broken))
    assert code == 2 and "prefecture_code" in err
    code, out, _ = await run_hub(settings, "registry", "check")
    assert code == 0 and "17 个县级单位" in out


async def test_commands_without_a_hub_say_how_to_start_one(
    settings: HubSettings, tmp_path: Path
) -> None:
    code, _, err = await run_hub(
        settings, "publish", "-", "--as", "renqiu-scjg", HUB_NATS_URL="", HUB_DATA_DIR=str(tmp_path)
    )
    assert code == 3 and "hub up" in err  # nothing to reach: unavailable


async def test_up_runs_the_demo_county_on_an_embedded_server(
    settings: HubSettings, tmp_path: Path
) -> None:
    code, out, err = await run_hub(
        settings,
        "up",
        "--rounds",
        "8",
        "--interval",
        "0.2",
        HUB_NATS_URL="",
        HUB_DATA_DIR=str(tmp_path),
    )
    assert code == 0, err
    assert "枢纽已启动：nats://127.0.0.1:" in out and "（单节点，2 个枢纽进程）" in out
    assert "送达 19/19 个单位已签收" in out  # a department's law change to all Renqiu townships
    assert "送达 31/31 个单位已签收" in out  # the county government's notice to everyone
    assert "投诉人信息仅送 任丘市市场监督管理局" in out
    assert "拒收" in out and "演示结束：发布 8 条，受理 6 条，拒收 2 条" in out
    assert not (tmp_path / "nats.url").exists()  # removed when the demo ended


async def test_reports_and_rebuild_from_the_command_line(
    hub: Hub, orgs: Orgs, tmp_path: Path
) -> None:
    event = sample_event("permit", "renqiu-scjg", datetime.now(UTC), recipients=("renqiu-chuan",))
    accepted = await (await orgs.publisher("renqiu-scjg")).publish(event)
    async with receiving(hub.settings, ["renqiu-chuan"]):
        await eventually(lambda: _acknowledged(hub))
    day = shanghai_day(datetime.now(UTC)).isoformat()

    code, out, err = await run_hub(
        hub.settings, "report", "daily", "--date", day, "--format", "csv"
    )
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.startswith("\ufeff视角,单位,单位标识,类别,事件数,应送达,已签收,按时,迟延,未签收")
    assert "按时率（%）,送达时延P50（秒）" in header  # units in the headers, for Excel and WPS
    assert any(
        r.startswith("接收,任丘市出岸镇人民政府,renqiu-chuan,许可监管,1,1,1,1,0,0") for r in rows
    )

    code, out, err = await run_hub(hub.settings, "report", "daily", "--date", day)
    assert code == 0 and "第十六条当日共享情况日报" in out and "任丘市市场监督管理局" in out

    code, out, err = await run_hub(
        hub.settings, "report", "org", "renqiu-scjg", "--from", day, "--to", day, "--format", "json"
    )
    card = json.loads(out)
    assert (card["org_name"], card["events_published"], card["items"]) == (
        "任丘市市场监督管理局",
        1,
        [],
    )

    copy = tmp_path / "rebuilt.sqlite3"
    code, out, err = await run_hub(hub.settings, "ledger", "rebuild", "--into", f"sqlite:///{copy}")
    assert code == 0, err
    assert f"{hub.settings.wire.events_stream}: 读取 1 条" in out and "已签收 1" in out
    at = datetime.now(UTC).isoformat()
    report = (
        "report",
        "org",
        "renqiu-chuan",
        "--from",
        day,
        "--to",
        day,
        "--at",
        at,
        "--format",
        "csv",
    )
    _, original, _ = await run_hub(hub.settings, *report)
    _, rebuilt, _ = await run_hub(hub.settings, *report, HUB_LEDGER_URL=f"sqlite:///{copy}")
    assert rebuilt == original and "许可监管,1,1,1,1" in rebuilt
    assert accepted.recipients == ("renqiu-chuan",)


async def _acknowledged(hub: Hub) -> bool:
    return (await hub.ledger.counts()).get(DeliveryState.ACKNOWLEDGED) == 1


async def test_report_for_an_unknown_organisation_exits_2(settings: HubSettings) -> None:
    code, _, err = await run_hub(
        settings, "report", "org", "renqiu-nowhere", "--from", "2025-09-01", "--to", "2025-09-30"
    )
    assert code == 2 and "不在组织登记簿中" in err


async def test_up_with_a_three_node_cluster_replicates_the_streams(
    settings: HubSettings, tmp_path: Path
) -> None:
    code, out, err = await run_hub(
        settings,
        "up",
        "--cluster",
        "3",
        "--rounds",
        "3",
        "--interval",
        "0.2",
        HUB_NATS_URL="",
        HUB_DATA_DIR=str(tmp_path),
    )
    assert code == 0, err
    assert "（3 节点集群，流复制 3 份，2 个枢纽进程）" in out
    assert "送达 19/19 个单位已签收" in out  # delivered and acknowledged through the cluster
    assert sorted(p.name for p in (tmp_path / "nats-cluster").iterdir()) == [
        "node-1",
        "node-2",
        "node-3",
        "routes-tls",  # the routes' CA and certificate: nodes verify each other
    ]
    config = (tmp_path / "nats-cluster" / "node-1" / "nats-server.conf").read_text()
    cluster = config[config.index("cluster {") :]
    assert "verify: true" in cluster and "routes-tls/server.pem" in cluster
    assert "operator: " in config  # authorization on every node
