"""The ops page and the township dashboard in headless Chromium (Debian's package, via Playwright).

Screenshots of both pages are kept in ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from hub import case_samples as cs
from hub.config import HubSettings
from hub.errors import EventRejected
from hub.ledger import Ledger
from hub.registry import Registry
from hub.samples import sample_event
from subscribers.cases import CaseClient
from subscribers.dashboard import dashboard_app
from subscribers.inbox import Inbox
from subscribers.recipient import Recipient
from subscribers.serving import address, listening, serve_asgi
from tests.conftest import Orgs, hub_running
from tests.helpers import Clock, eventually, receiving

pytestmark = pytest.mark.connected

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package (apt-get)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def new_page(browser: Browser) -> Page:
    page = await browser.new_page(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    page.set_default_timeout(15_000)
    return page


async def test_ops_page_shows_who_is_behind_who_is_at_risk_and_the_lag_chart(
    settings: HubSettings, registry: Registry, orgs: Orgs, browser: Browser
) -> None:
    evening = settings.model_copy(update={"at_risk_after": time(0, 0)})  # every open event counts
    async with hub_running(evening, registry) as hub:
        publisher = await orgs.publisher("renqiu-scjg")
        now = datetime.now(UTC)
        for n in range(3):
            await publisher.publish(
                sample_event(
                    "other", "renqiu-scjg", now, n, recipients=("renqiu-beihan", "renqiu-chuan")
                )
            )
        broken = sample_event("permit", "renqiu-scjg", now)
        broken["data"]["entity_uscc"] = "91130982MA0D4XXK3Y"
        with pytest.raises(EventRejected):
            await publisher.publish(broken)
        async with receiving(settings, ["renqiu-chuan"]):
            await eventually(
                lambda: _counts(hub.ledger, {"acknowledged": 3, "pending": 3}), within=20
            )
        page = await new_page(browser)
        await page.goto(f"{hub.web_url}/ops?every=1")
        rejected = page.locator('#rejections-by-publisher tbody tr[data-publisher="renqiu-scjg"]')
        await expect(rejected).to_contain_text("任丘市市场监督管理局")
        await expect(rejected).to_contain_text("uscc_check_character（1）")
        await expect(page.locator("#rejections-latest tbody tr").first).to_contain_text(
            "data.entity_uscc: 统一社会信用代码校验码错误"
        )
        first_rows = page.locator("#orgs tbody tr")
        await expect(first_rows.first).to_have_attribute("data-org", "renqiu-beihan")  # backlog
        await expect(first_rows.nth(1)).to_have_attribute("data-org", "renqiu-chuan")  # traffic
        await expect(page.locator("body[data-loaded=yes]")).to_have_count(1)
        risk = page.locator("#at-risk tbody tr")
        await expect(risk).to_have_count(1)
        await expect(risk.first).to_contain_text("任丘市北汉乡人民政府")
        await expect(risk.first).to_contain_text("3")
        beihan = page.locator('#orgs tbody tr[data-org="renqiu-beihan"] td')
        await expect(beihan.nth(3)).to_have_text("3")  # waiting
        chuan = page.locator('#orgs tbody tr[data-org="renqiu-chuan"] td')
        await expect(chuan.nth(6)).to_have_text("100.0%")  # today's on-time rate
        await expect(page.locator("#lag-chart rect")).to_have_count(1)
        await expect(page.locator("#total-waiting")).to_have_text("3")
        await expect(chuan.nth(7)).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
        await expect(beihan.nth(7)).to_have_text("—")  # it never acknowledged anything
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "ops.png"), full_page=True)
        # the page refreshes itself: a fourth event shows up without a reload
        await publisher.publish(
            sample_event("permit", "renqiu-scjg", now, 9, recipients=("renqiu-beihan",))
        )
        await expect(beihan.nth(3)).to_have_text("4", timeout=20_000)
        await expect(page.locator("#total-waiting")).to_have_text("4")
        await page.select_option("#category", "permit")
        await expect(beihan.nth(3)).to_have_text("1")  # only the permit is counted
        await expect(page.locator("#total-waiting")).to_have_text("1")
        await page.select_option("#category", "")
        await expect(beihan.nth(3)).to_have_text("4")
        await page.select_option("#county", "qingxian")
        await expect(page.locator('#orgs tbody tr[data-org="renqiu-beihan"]')).to_have_count(0)
        await expect(page.locator("#at-risk tbody tr")).to_have_count(0)
        await expect(page.locator("#orgs tbody tr").first).to_contain_text("青县")
        await eventually(lambda: hub.store_check.missing is not None, within=20)
        assert hub.store_check.missing == ()  # the start-up check found nothing missing
        await page.reload()
        await expect(page.locator("body[data-loaded=yes]")).to_have_count(1)
        await expect(page.locator("#store-alert")).to_be_hidden()
        hub.store_check.full = ("renqiu-scjg/lost-1", "renqiu-scjg/lost-2")  # as if damaged
        await page.reload()
        await expect(page.locator("#store-alert")).to_contain_text(
            "事件流缺失 2 个已受理事件，如 renqiu-scjg/lost-1、renqiu-scjg/lost-2"
        )
        # the record: the key it is signed with, the latest verification, what it found
        await expect(page.locator("#audit-key")).to_have_text(hub.audit.state.public_key)
        await expect(page.locator("#audit-alert")).to_be_hidden()
        hub.audit.state.findings, hub.audit.state.examples = 1, ("EVENTS 序号 3 被删除",)
        hub.audit.state.refused = {"renqiu-chuan": 2}
        await page.reload()
        await expect(page.locator("#audit-alert")).to_contain_text("EVENTS 序号 3 被删除")
        await expect(page.locator("#audit-refused")).to_contain_text(
            "任丘市出岸镇人民政府：拒收 2 个投递包"
        )
        # a key quoting a complainant's mobile number is shown masked, whichever panel names it
        hub.store_check.full = ("renqiu-chuan/tousu-13831700000-1",)
        await page.reload()
        await expect(page.locator("#store-alert")).to_contain_text("tousu-138****0000-1")
        assert "13831700000" not in await page.content()
        # organisations' consumers still being written after start-up: fan-out waits, ops see why
        await expect(page.locator("#consumers-writing")).to_be_hidden()
        hub.config_state.consumers_to_write = 7
        await page.reload()
        await expect(page.locator("#consumers-writing")).to_contain_text(
            "为 7 个单位创建投递消费者"
        )
        hub.config_state.consumers_to_write = 0
        await page.reload()
        await expect(page.locator("#consumers-writing")).to_be_hidden()
        await page.close()


async def _counts(ledger: Ledger, expected: dict[str, int]) -> bool:
    return await ledger.counts() == expected


async def test_township_dashboard_lists_what_it_received_and_shows_one_event(
    settings: HubSettings, registry: Registry, orgs: Orgs, browser: Browser, tmp_path: Path
) -> None:
    async with hub_running(settings, registry):
        inbox = await Inbox.open(tmp_path / "inbox.sqlite3", "renqiu-chuan")
        sock, stop = listening("127.0.0.1", 0), asyncio.Event()
        app = dashboard_app(inbox, registry.name("renqiu-chuan"), registry.name)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(serve_asgi(app, sock, stop))
                tasks.create_task(
                    Recipient(
                        await orgs.nc("renqiu-chuan"), "renqiu-chuan", wire=settings.wire
                    ).run(inbox.record, stop)
                )
                now = datetime.now(UTC)
                for category in ("law_change", "permit", "other"):
                    event = sample_event(category, "renqiu-scjg", now, recipients=("renqiu-chuan",))
                    await (await orgs.publisher("renqiu-scjg")).publish(event)
                await eventually(lambda: _received(inbox, 3), within=20)
                page = await new_page(browser)
                await page.goto(address(sock) + "/")
                await expect(page.locator("body[data-loaded=yes]")).to_have_count(1)
                await expect(page.locator("#org-name")).to_have_text(
                    "任丘市出岸镇人民政府 · 收到的共享信息"
                )
                rows = page.locator("#entries tbody tr")
                await expect(rows).to_have_count(3)
                await expect(rows.first).to_contain_text("其他需要共享的执法信息")  # newest first
                await expect(rows.nth(1)).to_contain_text(
                    "任丘市鸿运食品有限公司 食品经营许可 准予许可"
                )
                await expect(rows.first).to_contain_text("当日签收")
                badge = rows.first.locator(".badge").first
                assert (await badge.bounding_box() or {"height": 99})["height"] < 24  # one line
                await expect(
                    page.locator('nav button[data-category="permit"] .count')
                ).to_have_text("1")
                gaps = await page.eval_on_selector_all(
                    "nav button",
                    """buttons => buttons.map(b => b.lastChild.getBoundingClientRect().left
                                                 - b.firstChild.getBoundingClientRect().right)""",
                )
                assert min(gaps) >= 8  # every count stands apart from its label
                icon = await page.eval_on_selector("link[rel=icon]", "link => link.href")
                assert icon.startswith("data:image/svg+xml")  # no request, no 404
                await page.locator('nav button[data-category="permit"]').click()
                await expect(rows).to_have_count(1)
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
                await rows.first.click()
                fields = page.locator("#fields")
                await expect(fields.locator("dt", has_text="统一社会信用代码")).to_have_text(
                    "统一社会信用代码"  # the whole name, not "统一社会信用代码（18 位"
                )
                await expect(fields).to_contain_text("91130982MA0D4XXK3L")
                await expect(fields).to_contain_text("发布单位")
                await page.screenshot(path=str(ARTIFACTS / "dashboard-detail.png"), full_page=True)
                await page.close()
                stop.set()
        finally:
            await inbox.close()


async def _received(inbox: Inbox, count: int) -> bool:
    return len(await inbox.entries()) == count


async def test_asyncapi_page_documents_channels_and_fields_in_chinese_without_the_internet(
    settings: HubSettings, registry: Registry, browser: Browser
) -> None:
    async with hub_running(settings, registry) as hub:
        page = await new_page(browser)
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        await page.goto(f"{hub.web_url}/asyncapi")
        await expect(page.locator("body[data-loaded=yes]")).to_have_count(1)
        ingest = page.locator('#channels tr[data-channel="ingest"] td')
        await expect(ingest.nth(1)).to_have_text(settings.wire.ingest("{org}"))
        await expect(ingest.nth(2)).to_have_text("枢纽接收")
        await expect(ingest.nth(4)).to_contain_text("PermitEvent")
        uscc = page.locator('#schema-Permit tr[data-field="entity_uscc"] td')
        await expect(uscc.nth(2)).to_have_text("是")
        await expect(uscc.nth(3)).to_contain_text("统一社会信用代码")
        action = page.locator('#schema-Permit tr[data-field="action"] td')
        await expect(action.nth(1)).to_have_text("PermitAction")
        await expect(page.locator("#schema-PermitAction")).to_contain_text("granted | changed")
        phone = page.locator('#schema-Complainant tr[data-field="phone"] td')
        await expect(phone.nth(1)).to_contain_text("可为空")
        await expect(page.locator("#schema-PermitEvent")).to_contain_text("行政许可事项")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "asyncapi.png"), full_page=False)
        await page.close()
    # county networks are often offline: the page loads nothing from outside the hub
    assert requested and all(url.startswith(hub.web_url) for url in requested), requested


async def test_the_township_page_lists_its_cases_and_the_ops_page_the_overdue_ones(
    settings: HubSettings, registry: Registry, orgs: Orgs, browser: Browser, tmp_path: Path
) -> None:
    township, market = "qingxian-liuhe", "qingxian-scjg"
    clock = Clock(date(2026, 11, 2), 9)
    quick = settings.model_copy(update={"hazard_response_hours": 2.0, "case_watch_s": 0.1})
    async with hub_running(quick, registry, clock=clock) as hub:
        desk = CaseClient(await orgs.nc(township), township, wire=settings.wire)
        letter = await desk.upload(cs.pdf("page"), "协助函.pdf", "assistance_letter")
        publisher = await orgs.publisher(township)
        steps = [
            ("hazard_notice.v1", cs.hazard_notice("AQ-1", market, clock())),
            ("assistance_request.v1", cs.assistance("XZ-1", market, [letter])),
        ]
        for step_type, data in steps:
            await publisher.publish(cs.step(township, step_type, data, clock()))
        clock.at += timedelta(hours=3)  # the hazard's 2 hours are over; the 7 days are not

        async def raised() -> bool:
            found = await hub.ledger.case_state(f"{township}/AQ-1")
            return found is not None and found.deadlines["officers"].noticed_overdue

        await eventually(raised, within=15)
        inbox = await Inbox.open(tmp_path / "inbox.sqlite3", township)
        sock, stop = listening("127.0.0.1", 0), asyncio.Event()
        lister = partial(desk.cases, open_only=True)
        app = dashboard_app(inbox, registry.name(township), registry.name, lister)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(serve_asgi(app, sock, stop))
                page = await new_page(browser)
                await page.goto(address(sock) + "/")
                rows = page.locator("#case-list tbody tr")
                await expect(rows).to_have_count(2)
                hazard = page.locator(f'#case-list tr[data-case="{township}/AQ-1"]')
                await expect(hazard).to_contain_text("隐患通知")
                await expect(hazard).to_contain_text("青县市场监督管理局 派执法人员处理")
                await expect(hazard.locator(".badge.overdue")).to_have_text("已逾期")
                assistance = page.locator(f'#case-list tr[data-case="{township}/XZ-1"]')
                await expect(assistance).to_contain_text("截止 2026-11-11")
                await expect(assistance.locator(".badge.open")).to_have_text("未到期")
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "dashboard-cases.png"), full_page=True)

                await page.goto(hub.web_url + "/ops?every=1")
                overdue = page.locator("#overdue tbody tr")
                await expect(overdue).to_have_count(1)
                await expect(overdue.first).to_contain_text("青县市场监督管理局")
                await expect(overdue.first).to_contain_text("派执法人员处理")
                await expect(overdue.first).to_contain_text("已提醒双方")
                await expect(page.locator("#total-overdue")).to_have_text("1")
                await page.screenshot(path=str(ARTIFACTS / "ops-overdue.png"), full_page=True)
                await page.close()
                stop.set()
        finally:
            await inbox.close()
