"""Field types shared by the envelope and the Article 15 payloads.

Every custom check raises ``PydanticCustomError`` with a stable code; ``schemas.rules`` turns the
code into a Chinese and an English sentence for the publisher.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError
from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidChecksum, InvalidComponent, ValidationError

ORG_ID_PATTERN = r"^[a-z][a-z0-9-]{1,62}[a-z0-9]$"
_Ordered = TypeVar("_Ordered", date, Decimal)
_T = TypeVar("_T")

EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class Model(BaseModel):
    """Base of every wire model: immutable, strict types, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


OrgId = Annotated[
    str,
    StringConstraints(pattern=ORG_ID_PATTERN),
    Field(description="组织标识（登记簿中的 id，小写字母、数字和连字符）"),
]
EventId = Annotated[
    str,
    StringConstraints(pattern=EVENT_ID_PATTERN),
    Field(description="事件标识，同一发布单位内唯一（字母、数字和 . _ : -，最长 128 个字符）"),
]
NOT_BLANK = {"pattern": r"\S"}  # JSON Schema's way to say what strip_whitespace + min_length do
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(json_schema_extra=NOT_BLANK),
]
Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=5000),
    Field(json_schema_extra=NOT_BLANK),
]
Code = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    Field(json_schema_extra=NOT_BLANK),
]
# GB 32100's alphabet: digits and capitals but I, O, Z, S, V (the check character: python-stdnum)
_USCC_CHAR = "[0-9A-HJ-NP-RTUWXYa-hj-np-rtuwxy]"
USCC_PATTERN = rf"^\s*{_USCC_CHAR}{{2}}[0-9]{{6}}{_USCC_CHAR}{{10}}\s*$"


def delivered_copy(info: ValidationInfo) -> bool:
    """A copy the hub accepted and signed: its check characters and times were checked at ingest.

    Checking them again in every recipient's SDK (and in the ledger's projection) was the largest
    single cost of reading a delivery; the hub's signature vouches for the stored form instead.
    """
    return bool((info.context or {}).get("delivered"))


def _check_uscc(value: str, info: ValidationInfo) -> str:
    """Validate a unified social credit code (GB 32100) with python-stdnum."""
    if delivered_copy(info):
        return value
    code = value.strip().upper()
    if len(code) != 18:
        raise PydanticCustomError(
            "uscc_length", "must be 18 characters, got {length}", {"length": len(code)}
        )
    try:
        return str(uscc.validate(code))
    except InvalidChecksum:
        expected = uscc.calc_check_digit(code[:17])
        raise PydanticCustomError(
            "uscc_check_character",
            "bad check character {actual!r}, expected {expected!r}",
            {"actual": code[17], "expected": expected},
        ) from None
    except ValidationError:
        raise PydanticCustomError(
            "uscc_format", "not a unified social credit code (GB 32100)", {}
        ) from None


Uscc = Annotated[
    str,
    AfterValidator(_check_uscc),
    Field(
        description="统一社会信用代码（18 位，末位为 GB 32100 校验码）",
        examples=["91130982MA0D4XXK3L"],
        json_schema_extra={"pattern": USCC_PATTERN},
    ),
]


def _check_resident_id(value: str, info: ValidationInfo) -> str:
    """Validate a resident identity number; an unknown area code is left for review."""
    if delivered_copy(info):
        return value
    number = value.strip().upper()
    try:
        return str(ric.validate(number))
    except InvalidComponent:
        # stdnum rejects real IDs whose area code is younger than the birth date: keep, review
        checked = ric.compact(number)
        if len(checked) == 18 and checked[-1] == ric.calc_check_digit(checked):
            return str(checked)
        raise PydanticCustomError(
            "resident_id", "not a valid resident identity number", {}
        ) from None
    except ValidationError:
        raise PydanticCustomError(
            "resident_id", "not a valid resident identity number", {}
        ) from None


def resident_id_needs_review(number: str) -> bool:
    """True when the number passes the check digit but its area or birth date is unknown."""
    try:
        ric.validate(number)
    except InvalidComponent:
        return True
    except ValidationError:
        return False
    return False


ResidentId = Annotated[
    str,
    AfterValidator(_check_resident_id),
    Field(
        description="居民身份证号码（18 位，含校验码）",
        json_schema_extra={"pattern": r"^\s*[0-9]{17}[0-9Xx]\s*$"},
    ),
]
Phone = Annotated[
    str,
    StringConstraints(pattern=r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$"),
    Field(description="联系电话（手机号或带区号的固定电话）"),
]


class PenaltyItem(Model):
    """处罚事项（下放执法事项清单中的一项）。"""

    code: Code = Field(description="事项编码（行政执法事项清单中的编码）")
    name: Title = Field(description="事项名称")


class Attachment(Model):
    """附件：存于别处的文件，以地址和摘要引用。"""

    name: Title = Field(description="附件名称")
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S{1,2000}$")] = Field(
        description="附件地址（http 或 https）"
    )
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="附件 SHA-256 摘要（64 位小写十六进制）"
    )


def not_before(value: _Ordered | None, bound: Any, *, other: str) -> _Ordered | None:
    """Refuse ``value`` when it is below ``bound`` (a date before, an amount under)."""
    if value is None or bound is None or not isinstance(bound, type(value)) or value >= bound:
        return value
    code = "date_order" if isinstance(value, date) else "range_order"
    raise PydanticCustomError(
        code, "must not be before {other} ({bound})", {"other": other, "bound": str(bound)}
    )


def required_when(value: _T, *, reason: str, reason_zh: str) -> _T:
    """Refuse a missing value that another field's value makes necessary."""
    if value is None or value == () or value == []:
        raise PydanticCustomError(
            "required_when",
            "required when {reason}",
            {"reason": reason, "reason_zh": reason_zh},
        )
    return value


def forbidden_when(value: _T, *, reason: str, reason_zh: str) -> _T:
    """Refuse a value that another field's value makes meaningless."""
    if value is not None and value != () and value != []:
        raise PydanticCustomError(
            "forbidden_when",
            "must be empty when {reason}",
            {"reason": reason, "reason_zh": reason_zh},
        )
    return value
