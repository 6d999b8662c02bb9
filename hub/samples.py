"""Realistic Article 15 events for the demo county, the examples and the benchmarks.

Entity names and credit codes are invented (the codes carry correct GB 32100 check characters);
penalty-item codes follow the pattern of a county's enforcement list.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from schemas.shanghai import SHANGHAI
from subscribers.publisher import compose

ENTITIES = (
    ("任丘市鸿运食品有限公司", "91130982MA0D4XXK3L"),
    ("任丘市出岸镇老张家常菜馆", "92130982MA0E7R2N12"),
    ("任丘市华北石化配件有限公司", "91130982MA0CX8LE5R"),
    ("任丘市宏达建材有限公司", "91130982105628740W"),
    ("任丘市麻家坞镇便民超市", "92130982MA0F3KQ8XF"),
    ("任丘市京南再生资源回收有限公司", "91130982MA0G1HW6B4"),
)
FOOD_ITEM = {"code": "130982-SCJG-CF-0012", "name": "对未取得食品经营许可从事食品经营活动的处罚"}
BUILDING_ITEM = {"code": "130982-ZJJ-CF-0031", "name": "对擅自占用城市道路堆放建筑材料的处罚"}


def _day(now: datetime, days: int = 0) -> str:
    return (now.astimezone(SHANGHAI).date() + timedelta(days=days)).isoformat()


def law_change(now: datetime, n: int) -> dict[str, Any]:
    """A provincial regulation amended, affecting a devolved food-safety penalty."""
    return {
        "document_title": "河北省食品小作坊小餐饮小摊点管理条例",
        "document_number": f"河北省第十四届人民代表大会常务委员会公告第{30 + n}号",
        "document_kind": "local_regulation",
        "issuing_authority": "河北省人民代表大会常务委员会",
        "change": "amended",
        "promulgated_on": _day(now, -20),
        "effective_on": _day(now, 10),
        "affected_items": [FOOD_ITEM],
        "summary": "小餐饮登记证有效期由三年调整为五年，未登记经营的罚款幅度相应调整。",
    }


def permit(now: datetime, n: int) -> dict[str, Any]:
    """A food business permit granted."""
    name, code = ENTITIES[n % len(ENTITIES)]
    return {
        "action": "granted",
        "permit_name": "食品经营许可",
        "entity_name": name,
        "entity_uscc": code,
        "decided_on": _day(now),
        "permit_number": f"JY11309820{n:06d}",
        "valid_from": _day(now),
        "valid_until": _day(now, 5 * 365),
        "address": "任丘市会战道与北环路交叉口东行200米",
    }


def statistics(now: datetime, n: int) -> dict[str, Any]:
    """A township's quarterly enforcement figures."""
    today = now.astimezone(SHANGHAI).date()
    quarter_start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    return {
        "kind": "dataset",
        "title": f"{today.year}年第{(today.month - 1) // 3 + 1}季度综合行政执法工作统计",
        "period_start": quarter_start.isoformat(),
        "period_end": today.isoformat(),
        "indicators": [
            {"name": "行政检查次数", "value": str(120 + n), "unit": "次"},
            {"name": "立案数", "value": str(8 + n % 5), "unit": "件"},
            {"name": "罚没款金额", "value": "3.2500", "unit": "万元"},
        ],
    }


def discretion_standard(now: datetime, n: int) -> dict[str, Any]:
    """A discretion benchmark for a devolved food-safety penalty."""
    return {
        "kind": "benchmark",
        "title": "食品经营领域行政处罚裁量基准",
        "version": f"{now.year}版第{n + 1}次修订",
        "effective_on": _day(now, 1),
        "legal_basis": "《中华人民共和国食品安全法》第一百二十二条",
        "penalty_item": FOOD_ITEM,
        "benchmarks": [
            {
                "severity": "slight",
                "circumstance": "首次违法，货值金额不足一千元，及时改正",
                "penalty": "没收违法所得和违法经营的食品，并处五万元罚款",
                "fine_min_yuan": "50000",
                "fine_max_yuan": "50000",
            },
            {
                "severity": "ordinary",
                "circumstance": "货值金额一千元以上不足一万元",
                "penalty": "没收违法所得和违法经营的食品，并处五万元以上十万元以下罚款",
                "fine_min_yuan": "50000",
                "fine_max_yuan": "100000",
            },
        ],
    }


def inspection_record(now: datetime, n: int) -> dict[str, Any]:
    """A township's food-safety inspection that ordered rectification."""
    name, code = ENTITIES[(n + 1) % len(ENTITIES)]
    return {
        "kind": "inspection",
        "title": "餐饮服务单位食品安全日常检查",
        "occurred_on": _day(now),
        "location": "任丘市出岸镇出岸村商业街12号",
        "content": "检查后厨卫生、食品贮存、从业人员健康证明；发现冷藏柜生熟混放。",
        "inspectors": [
            {"name": "刘建国", "certificate_no": "13098221000123"},
            {"name": "王海燕", "certificate_no": "13098221000157"},
        ],
        "entity_name": name,
        "entity_uscc": code,
        "result": "rectification_ordered",
        "rectification_due": _day(now, 15),
    }


def complaint_outcome(now: datetime, n: int) -> dict[str, Any]:
    """A township transfers a complaint to market regulation; only it sees the complainant."""
    return {
        "complaint_no": f"RQ12345-{now.year}-{n:05d}",
        "channel": "hotline_12345",
        "received_on": _day(now),
        "status": "transferred",
        "matter": "反映某超市销售过期食品，不属于本镇执法事项清单范围。",
        "respondent_name": ENTITIES[4][0],
        "transferred_to": "renqiu-scjg",
        "decided_on": _day(now),
        "complainant": {"name": "赵先生", "phone": "13831700000", "anonymous_to_respondent": True},
        "complainant_shared_with": ["renqiu-scjg"],
    }


def other(now: datetime, n: int) -> dict[str, Any]:
    """A county-wide notice of a joint enforcement campaign."""
    return {
        "title": "关于开展城镇燃气安全专项整治联合执法的通知",
        "content": (
            "各乡镇（街道）、有关部门：定于本月开展城镇燃气安全专项整治联合执法，"
            "请于三日内报送联络人。"
        ),
        "tags": ["联合执法", "燃气安全"],
    }


PAYLOADS: dict[str, Callable[[datetime, int], dict[str, Any]]] = {
    "law_change": law_change,
    "permit": permit,
    "statistics": statistics,
    "discretion_standard": discretion_standard,
    "inspection_record": inspection_record,
    "complaint_outcome": complaint_outcome,
    "other": other,
}

# who publishes each category in the Renqiu demo
RENQIU_PUBLISHERS = {
    "law_change": "renqiu-scjg",
    "permit": "renqiu-scjg",
    "statistics": "renqiu-chuan",
    "discretion_standard": "renqiu-scjg",
    "inspection_record": "renqiu-chuan",
    "complaint_outcome": "renqiu-chuan",
    "other": "renqiu-gov",
}


def sample_event(
    category: str, source: str, now: datetime, n: int = 0, **envelope: Any
) -> dict[str, Any]:
    """A complete, valid envelope of ``category`` published by ``source``."""
    return compose(source, f"{category}.v1", PAYLOADS[category](now, n), time=now, **envelope)
