"""Case steps as the demo county and the tests send them: plausible letters, real attachments.

Each builder returns the ``data`` of one step; ``step`` wraps it in an envelope. Attachments are
small but real PDF files (the hub checks the content, not the name), uploaded before use.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from subscribers.publisher import compose

Attachment = dict[str, str]


def pdf(title: str) -> bytes:
    """A one-page PDF whose text is ``title`` (ASCII only: a sample, not a letter)."""
    text = title.encode("ascii", "replace")
    stream = b"BT /F1 12 Tf 72 720 Td (" + text + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
    ]
    body, offsets = b"%PDF-1.4\n", []
    for n, obj in enumerate(objects, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n%s\nendobj\n" % (n, obj)
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    body += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return body + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )


TRANSFER_MATERIALS = (
    ("transfer_letter", "涉嫌违法案件移交函.pdf", "transfer letter"),
    ("inspection_record", "现场检查记录.pdf", "inspection record"),
    ("evidence", "现场照片及询问笔录.pdf", "preliminary evidence"),
)


def step(
    source: str, step_type: str, data: dict[str, Any], at: datetime, event_id: str | None = None
) -> dict[str, Any]:
    """The envelope of one case step, formed at ``at``."""
    return compose(source, step_type, data, time=at, event_id=event_id)


def transfer(
    case_no: str, receiver: str, discovered_on: date, attachments: Sequence[Attachment]
) -> dict[str, Any]:
    """A township or department transfers a violation outside its jurisdiction (Art. 7–9)."""
    return {
        "case_no": case_no,
        "receiver": receiver,
        "discovered_on": discovered_on.isoformat(),
        "violation": "巡查发现某加工点未经许可擅自占用耕地建设厂房，涉嫌违反土地管理法律法规",
        "location": "镇辖区内某村西侧耕地",
        "party_name": "某木器加工厂",
        "jurisdiction": "占用耕地建设属自然资源主管部门职责，且不在本单位赋权事项清单内",
        "ongoing": True,
        "measures_taken": "已当场责令停止施工，并拍照固定现场",
        "attachments": list(attachments),
        "approved_by": {
            "name": "张立军",
            "title": "镇长",
            "approved_on": discovered_on.isoformat(),
        },
    }


def extension(case_no: str, receiver: str, discovered_on: date, new_due: date) -> dict[str, Any]:
    """Notice, before the 3 working days end, that the transfer needs longer (Art. 7)."""
    return {
        "case_no": case_no,
        "receiver": receiver,
        "discovered_on": discovered_on.isoformat(),
        "new_due": new_due.isoformat(),
        "reason": "需调取当事人用地审批资料核实，3 个工作日内无法完成移交材料",
    }


def reply(case: str, accepted: bool) -> dict[str, Any]:
    """The receiver answers in writing: accepted, or not its own (Art. 7)."""
    if accepted:
        return {"case": case, "decision": "accepted", "opinion": "属本单位管辖，予以受理"}
    return {
        "case": case,
        "decision": "not_ours",
        "opinion": "经核查该地块为集体建设用地，不属本单位管辖，请县人民政府决定",
    }


def decision(case: str, assigned_to: str) -> dict[str, Any]:
    """The county government decides who has jurisdiction."""
    return {"case": case, "assigned_to": assigned_to, "reason": "依据县政府职责分工决定"}


def dispute(case: str) -> dict[str, Any]:
    """A party disputes the jurisdiction (Art. 21)."""
    return {"case": case, "position": "该事项在县级赋权清单之外，依法应由县级部门管辖"}


def dispute_decision(case: str, assigned_to: str) -> dict[str, Any]:
    """The staffing office or justice bureau settles the dispute (Art. 21)."""
    return {"case": case, "assigned_to": assigned_to, "reason": "依据三定规定和赋权清单协调确定"}


def assistance(case_no: str, receiver: str, attachments: Sequence[Attachment]) -> dict[str, Any]:
    """A township asks a department for material or a test (Art. 20)."""
    return {
        "case_no": case_no,
        "receiver": receiver,
        "kind": "testing",
        "matter": "办理一起涉嫌销售不合格化肥案件，请协助对抽取的样品进行检测",
        "attachments": list(attachments),
    }


def supplement_request(case: str) -> dict[str, Any]:
    """The department needs more material (within 2 working days of receipt)."""
    return {"case": case, "needed": "请补充样品封存记录及抽样单原件扫描件"}


def supplement(case: str, attachments: Sequence[Attachment]) -> dict[str, Any]:
    """The township sends the material; the answer's clock runs again."""
    return {"case": case, "note": "补充抽样单及封存记录", "attachments": list(attachments)}


def assistance_reply(case: str) -> dict[str, Any]:
    """The department's written opinion."""
    return {"case": case, "opinion": "经检测，样品总养分含量低于标识值，检测报告随后送达"}


def hazard_notice(case_no: str, receiver: str, found_at: datetime) -> dict[str, Any]:
    """A major safety hazard of another department's, found during enforcement (Art. 18)."""
    return {
        "case_no": case_no,
        "receiver": receiver,
        "kind": "safety",
        "found_at": found_at.isoformat(),
        "location": "镇区某液化气供应站",
        "description": "检查中发现液化气钢瓶露天堆放、无防护设施，存在重大安全隐患",
    }


def hazard_response(
    case: str, *, officers: Sequence[str] = (), outcome: str = ""
) -> dict[str, Any]:
    """The department reports officers sent, then the outcome."""
    if outcome:
        return {"case": case, "stage": "outcome", "outcome": outcome}
    return {"case": case, "stage": "officers_sent", "officers": list(officers)}
