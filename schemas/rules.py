"""Every rule a message can break, with the sentence a township clerk reads (Chinese, then English).

Pydantic's own error codes and ours (``PydanticCustomError`` codes in ``schemas.*`` and the hub's
routing and identity rules) map to a Chinese template filled from the error's context.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic_core import ErrorDetails

from schemas.replies import FieldError

# code -> (Chinese template, English template); templates use the error's context keys
RULES: dict[str, tuple[str, str]] = {
    # structure
    "json_invalid": ("不是有效的 JSON（{error}）", "not valid JSON ({error})"),
    "json_type": ("应为 JSON 对象", "must be a JSON object"),
    "model_type": ("应为 JSON 对象", "must be a JSON object"),
    "model_attributes_type": ("应为 JSON 对象", "must be a JSON object"),
    "dict_type": ("应为 JSON 对象", "must be a JSON object"),
    "missing": ("必填字段缺失", "field required"),
    "extra_forbidden": ("没有这个字段（请核对字段名）", "unknown field"),
    "recursion_loop": ("嵌套层次过深", "nested too deeply"),
    "too_large": (
        "消息长度 {size} 字节，超过上限 {limit} 字节",
        "message is {size} bytes, over the limit of {limit}",
    ),
    "batch_too_large": (
        "一次最多发布 {limit} 条事件，本次 {count} 条：请分批发送",
        "at most {limit} events per request, this one has {count}: send them in parts",
    ),
    "union_tag_invalid": (
        "事件类型 {tag} 不存在，可用类型：{expected_tags}",
        "unknown event type {tag}; known types: {expected_tags}",
    ),
    "union_tag_not_found": ("缺少事件类型字段 type", "the event type field 'type' is missing"),
    # scalar types
    "string_type": ("应为字符串", "must be a string"),
    "string_too_short": (
        "不得为空，至少 {min_length} 个字符",
        "needs at least {min_length} characters",
    ),
    "string_too_long": ("不得超过 {max_length} 个字符", "must be at most {max_length} characters"),
    "string_pattern_mismatch": (
        "格式不正确（应符合 {pattern}）",
        "bad format (must match {pattern})",
    ),
    "string_unicode": ("含有无效字符", "contains invalid characters"),
    "bool_type": ("应为 true 或 false", "must be true or false"),
    "int_type": ("应为整数", "must be an integer"),
    "int_parsing": ("应为整数", "must be an integer"),
    "decimal_type": ("应为数值", "must be a number"),
    "decimal_parsing": ("应为数值", "must be a number"),
    "decimal_max_digits": (
        "数值位数过多（最多 {max_digits} 位）",
        "too many digits (at most {max_digits})",
    ),
    "decimal_max_places": (
        "最多 {decimal_places} 位小数",
        "at most {decimal_places} decimal places",
    ),
    "decimal_whole_digits": ("整数部分位数过多", "too many digits before the decimal point"),
    "finite_number": ("应为有限数值", "must be a finite number"),
    "greater_than_equal": ("不得小于 {ge}", "must be at least {ge}"),
    "less_than_equal": ("不得大于 {le}", "must be at most {le}"),
    "literal_error": ("取值应为 {expected}", "must be {expected}"),
    "enum": ("取值应为 {expected} 之一", "must be one of {expected}"),
    "tuple_type": ("应为数组", "must be an array"),
    "list_type": ("应为数组", "must be an array"),
    "too_short": ("至少需要 {min_length} 项", "needs at least {min_length} item(s)"),
    "too_long": ("最多 {max_length} 项", "at most {max_length} item(s)"),
    # dates and times
    "date_type": ("应为日期，格式 YYYY-MM-DD", "must be a date, YYYY-MM-DD"),
    "date_parsing": ("应为日期，格式 YYYY-MM-DD", "must be a date, YYYY-MM-DD"),
    "date_from_datetime_parsing": ("应为日期，格式 YYYY-MM-DD", "must be a date, YYYY-MM-DD"),
    "date_from_datetime_inexact": ("应为日期，不含时刻", "must be a date without a time of day"),
    "datetime_type": (
        "应为带时区的时间，如 2025-09-30T10:15:00+08:00",
        "must be a time with offset, e.g. 2025-09-30T10:15:00+08:00",
    ),
    "datetime_parsing": (
        "应为带时区的时间，如 2025-09-30T10:15:00+08:00",
        "must be a time with offset, e.g. 2025-09-30T10:15:00+08:00",
    ),
    "datetime_from_date_parsing": (
        "应为带时区的时间，如 2025-09-30T10:15:00+08:00",
        "must be a time with offset, e.g. 2025-09-30T10:15:00+08:00",
    ),
    "timezone_aware": (
        "时间必须带时区（如 +08:00）",
        "the time must carry an offset (e.g. +08:00)",
    ),
    "time_in_future": (
        "信息形成时间 {time} 晚于当前时间 {now}（北京时间）",
        "formed time {time} lies in the future (hub clock {now})",
    ),
    "date_order": ("不得早于 {other}（{bound}）", "must not be before {other} ({bound})"),
    "range_order": ("不得小于 {other}（{bound}）", "must not be below {other} ({bound})"),
    # content rules of the categories
    "required_when": ("{reason_zh}时必填", "required when {reason}"),
    "forbidden_when": ("{reason_zh}时不得填写", "must be empty when {reason}"),
    "uscc_length": (
        "统一社会信用代码应为 18 位，实际 {length} 位",
        "a unified social credit code has 18 characters, got {length}",
    ),
    "uscc_check_character": (
        "统一社会信用代码校验码错误：末位为 {actual}，应为 {expected}",
        "bad check character {actual}, expected {expected}",
    ),
    "uscc_format": (
        "不是有效的统一社会信用代码（GB 32100）",
        "not a unified social credit code (GB 32100)",
    ),
    "resident_id": ("不是有效的居民身份证号码", "not a valid resident identity number"),
    "resident_id_review": (
        "身份证号码校验码正确，但地区码或出生日期无法核实，请人工复核",
        "check digit is right but the area code or birth date is unknown: review by hand",
    ),
    "two_inspectors": (
        "行政检查应由两名以上执法人员实施，实际 {count} 名",
        "an inspection needs at least 2 law-enforcement officers, got {count}",
    ),
    "duplicate_recipient": ("重复列出了接收单位：{orgs}", "lists {orgs} more than once"),
    "time_not_rfc3339": (
        "{value} 不是 RFC 3339 格式的时间（应如 2025-09-30T10:15:00+08:00：日期与时间之间用 T，"
        "含秒，时区写作 Z 或 +08:00）",
        "{value} is not an RFC 3339 time (e.g. 2025-09-30T10:15:00+08:00)",
    ),
    "content_type": (
        "数据格式 {value} 不是 application/json（可带 charset=utf-8）",
        "{value} is not application/json (optionally charset=utf-8)",
    ),
    # identity and routing (checked by the hub against the registry)
    "source_mismatch": (
        "发布单位 {source} 与发布身份 {publisher} 不一致：只能以本单位名义发布",
        "source {source} is not the publishing organisation {publisher}: publish only as yourself",
    ),
    "id_conflict": (
        "事件标识 {id} 已用于内容不同的另一事件（事件流序号 {seq}）：重发须与原件完全一致，"
        "新的事件请使用新的标识",
        "event id {id} was already used for a different event (events stream seq {seq}): "
        "a resend must be identical; a new event needs a new id",
    ),
    "unknown_publisher": (
        "发布单位 {org} 不在组织登记簿中",
        "publisher {org} is not in the organisation registry",
    ),
    "unknown_recipient": (
        "接收单位 {org} 不在组织登记簿中",
        "recipient {org} is not in the organisation registry",
    ),
    "outside_county": (
        "接收单位 {org}（{name}）属于{org_county}，不在发布单位所在的{county}",
        "recipient {org} belongs to {org_county}, outside the publisher's county {county}",
    ),
    "self_recipient": ("不能把本单位列为接收单位", "the publisher cannot be its own recipient"),
    "no_recipients": (
        "按路由规则没有接收单位（{kind}发布的{category}），请用 recipients 指定",
        "the routing rules give no recipient ({category} from a {kind}); name them in recipients",
    ),
    # the case workflows (Art. 7–14, 18, 20, 21), checked by the hub against the case
    "materials_missing": (
        "移交材料不全，缺少：{missing_zh}（第八条）",
        "the transfer lacks {missing} (Art. 8)",
    ),
    "case_recipients": (
        "案件步骤的接收单位由案件决定，不能另行指定",
        "a case step goes to the case's parties: recipients may not be named",
    ),
    "case_exists": (
        "案件 {case} 已存在（{status_zh}）：同一案件不得重复发起",
        "case {case} already exists ({status}): it cannot be opened again",
    ),
    "case_unknown": (
        "案件 {case} 不存在或尚未送达，不能在收到之前{step_zh}",
        "case {case} does not exist or has not been received: it cannot be answered yet",
    ),
    "case_kind": (
        "{step_zh}不适用于{kind_zh}案件 {case}",
        "this step does not belong to a case of kind {kind}",
    ),
    "not_case_party": (
        "{org} 不是案件 {case} 的{role_zh}，不能{step_zh}",
        "{org} is not the {role} of case {case}",
    ),
    "case_state": (
        "案件 {case} 当前为“{status_zh}”，不能{step_zh}",
        "case {case} is '{status}': this step is not possible now",
    ),
    "counterpart_kind": (
        "{step_zh}只能{allowed_zh}（本次为{source_kind} → {receiver_kind}）",
        "this step goes {allowed} (here: {source_kind} to {receiver_kind})",
    ),
    "no_second_transfer": (
        "不得再次移交（第七条）：本单位是案件 {previous} 的接收单位，附件 {name} 来自该案件；"
        "不属本单位管辖的，应报请县人民政府决定",
        "no second transfer (Art. 7): this organisation received case {previous}, which "
        "attachment {name} belongs to; a case that is not its own goes to the county government",
    ),
    "extension_too_late": (
        "延长移交期限须在期限 {due} 届满前告知（第七条），现在已是 {now}",
        "an extension must be notified before the deadline {due} (Art. 7); it is {now}",
    ),
    "extension_beyond_limit": (
        "延长后的期限 {new_due} 超过发现之日起 5 个工作日（最迟 {limit}，第七条）",
        "the new deadline {new_due} is beyond 5 working days of discovery ({limit}, Art. 7)",
    ),
    "extension_not_later": (
        "延长后的期限 {new_due} 不晚于原期限 {due}",
        "the new deadline {new_due} is not after the current one {due}",
    ),
    "already_extended": (
        "已于 {at} 延期一次，不能再次延期",
        "already extended once ({at})",
    ),
    "supplement_too_late": (
        "需要补充资料的，应自收到协助函件之日起两个工作日内告知（截至 {due}，第二十条）",
        "more material must be asked for within 2 working days of receipt (by {due}, Art. 20)",
    ),
    "attachment_unknown": (
        "附件 {sha256} 不在枢纽附件库中：请先上传",
        "attachment {sha256} is not in the hub's attachment store: upload it first",
    ),
    "attachment_not_yours": (
        "附件 {name} 既不是本单位上传的，也不属于本单位参与的案件",
        "attachment {name} was not uploaded by this organisation nor belongs to one of its cases",
    ),
    "not_a_recipient": (
        "{org} 不是本事件的接收单位，不能接收投诉人信息",
        "{org} is not a recipient of this event, so it cannot receive the complainant's data",
    ),
}


def field_path(loc: Sequence[str | int]) -> str:
    """``("data", "items", 0, "code")`` -> ``data.items[0].code``; the empty path is ``$``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "$"


def explain(
    field: str, rule: str, context: Mapping[str, Any] | None = None, fallback: str = ""
) -> FieldError:
    """Build the error a publisher reads for one broken rule."""
    context = dict(context or {})
    zh, en = RULES.get(rule, ("不符合规则 {rule}：{fallback}", "{fallback}"))
    values = _SafeFormat(context | {"rule": rule, "fallback": fallback})
    return FieldError(
        field=field,
        rule=rule,
        message_zh=zh.format_map(values),
        message_en=(en.format_map(values) if rule in RULES else fallback) or rule,
    )


def explain_validation(errors: Iterable[ErrorDetails], *, tagged: bool) -> tuple[FieldError, ...]:
    """Turn pydantic's errors into field errors; ``tagged`` drops the union tag from each path."""
    result = []
    for error in errors:
        loc = tuple(error["loc"])
        if tagged and loc and error["type"] not in ("union_tag_invalid", "union_tag_not_found"):
            loc = loc[1:]
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = ("type",)
        context = dict(error.get("ctx") or {})
        result.append(explain(field_path(loc), error["type"], context, fallback=error["msg"]))
    return tuple(result)


class _SafeFormat(dict[str, Any]):
    """Missing template keys stay visible instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
