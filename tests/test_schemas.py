from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from stdnum.cn import ric

from hub.envelope import parse_event
from hub.errors import EventRejected
from hub.samples import PAYLOADS, sample_event
from schemas.common import resident_id_needs_review
from schemas.complaint_outcome import ComplaintOutcome
from schemas.envelope import CATEGORIES, DELIVERED, EVENT_ADAPTER, EVENT_TYPES
from schemas.permit import Permit
from schemas.replies import FieldError
from schemas.rules import RULES
from schemas.shanghai import SHANGHAI
from subscribers.inbox import labelled

NOW = datetime(2025, 9, 30, 2, 15, tzinfo=UTC)


def rejection(event: dict[str, object] | bytes, now: datetime = NOW) -> dict[str, FieldError]:
    raw = event if isinstance(event, bytes) else orjson.dumps(event)
    with pytest.raises(EventRejected) as caught:
        parse_event(raw, now=now, clock_skew_s=300)
    return {e.field: e for e in caught.value.errors}


def permit(**data: object) -> dict[str, object]:
    event = sample_event("permit", "renqiu-scjg", NOW)
    event["data"].update(data)
    return event


@pytest.mark.parametrize("category", list(PAYLOADS))
def test_sample_event_of_every_category_validates(category: str) -> None:
    event = parse_event(
        orjson.dumps(sample_event(category, "renqiu-scjg", NOW)), now=NOW, clock_skew_s=0
    )
    assert event.category == category
    assert event.type == f"{category}.v1"


def test_there_is_one_event_type_per_article_15_category() -> None:
    assert [c.number for c in CATEGORIES.values()] == [1, 2, 3, 4, 5, 6, 7]
    assert EVENT_TYPES == (
        "law_change.v1",
        "permit.v1",
        "statistics.v1",
        "discretion_standard.v1",
        "inspection_record.v1",
        "complaint_outcome.v1",
        "other.v1",
    )


def test_bad_uscc_check_character_names_the_field_and_the_expected_character() -> None:
    errors = rejection(permit(entity_uscc="91130982MA0D4XXK3Y"))
    error = errors["data.entity_uscc"]
    assert error.rule == "uscc_check_character"
    assert "应为 L" in error.message_zh
    assert "expected L" in error.message_en


def test_uscc_of_wrong_length_is_refused() -> None:
    assert rejection(permit(entity_uscc="9113098"))["data.entity_uscc"].rule == "uscc_length"


def test_every_broken_field_is_reported_at_once() -> None:
    errors = rejection(
        permit(entity_uscc="91130982MA0D4XXK3Y", valid_until="2020-01-01", colour="red")
    )
    assert {"data.entity_uscc", "data.valid_until", "data.colour"} <= set(errors)
    assert errors["data.valid_until"].rule == "date_order"
    assert errors["data.colour"].rule == "extra_forbidden"


def test_permit_decision_without_number_is_refused_but_supervision_needs_none() -> None:
    assert rejection(permit(permit_number=None))["data.permit_number"].rule == "required_when"
    note = "抽查发现超范围经营，已责令改正"
    supervision = permit(action="supervision", permit_number=None, supervision_note=note)
    parsed = parse_event(orjson.dumps(supervision), now=NOW, clock_skew_s=0).data
    assert isinstance(parsed, Permit) and parsed.supervision_note == note


def test_supervision_without_note_is_refused() -> None:
    errors = rejection(permit(action="supervision"))
    assert errors["data.supervision_note"].rule == "required_when"
    assert "动作为监督管理信息时必填" in errors["data.supervision_note"].message_zh


def test_effective_date_before_promulgation_is_refused() -> None:
    event = sample_event("law_change", "renqiu-scjg", NOW)
    event["data"]["effective_on"] = "2025-01-01"
    error = rejection(event)["data.effective_on"]
    assert error.rule == "date_order" and "promulgated_on" in error.message_zh


def test_law_change_without_affected_items_is_refused() -> None:
    event = sample_event("law_change", "renqiu-scjg", NOW)
    event["data"]["affected_items"] = []
    assert rejection(event)["data.affected_items"].rule == "too_short"


def test_data_request_needs_items_and_due_date() -> None:
    event = sample_event("statistics", "renqiu-scjg", NOW)
    event["data"].update(kind="data_request", indicators=[])
    errors = rejection(event)
    assert errors["data.requested_items"].rule == "required_when"
    assert errors["data.due_on"].rule == "required_when"


def test_inspection_with_one_officer_is_refused() -> None:
    event = sample_event("inspection_record", "renqiu-chuan", NOW)
    event["data"]["inspectors"] = event["data"]["inspectors"][:1]
    error = rejection(event)["data.inspectors"]
    assert error.rule == "two_inspectors" and "两名以上" in error.message_zh


def test_fine_range_upside_down_is_refused() -> None:
    event = sample_event("discretion_standard", "renqiu-scjg", NOW)
    event["data"]["benchmarks"][1]["fine_max_yuan"] = "100"
    assert rejection(event)["data.benchmarks[1].fine_max_yuan"].rule == "range_order"


def test_complainant_without_addressees_is_refused() -> None:
    event = sample_event("complaint_outcome", "renqiu-chuan", NOW)
    event["data"]["complainant_shared_with"] = []
    assert rejection(event)["data.complainant_shared_with"].rule == "required_when"


def test_time_without_offset_is_refused() -> None:
    event = permit()
    event["time"] = "2025-09-30T10:15:00"
    assert rejection(event)["time"].rule == "timezone_aware"


@pytest.mark.parametrize(
    "written",
    ["2025-09-30 10:15:00+08:00", "2025-09-30T10:15:00+0800", "2025-09-30T10:15+08:00"],
    ids=["space-for-T", "offset-without-colon", "no-seconds"],
)
def test_a_time_that_is_not_strict_rfc3339_is_refused_naming_the_form(written: str) -> None:
    event = permit()
    event["time"] = written
    error = rejection(event)["time"]
    assert error.rule == "time_not_rfc3339"
    assert written in error.message_zh and "T" in error.message_zh


def test_a_copy_stored_before_the_strict_time_rule_is_still_read() -> None:
    event = permit()
    event["time"] = "2025-09-30 10:15:00+08:00"
    copy = EVENT_ADAPTER.validate_json(orjson.dumps(event), context=DELIVERED)
    assert copy.time.isoformat() == "2025-09-30T10:15:00+08:00"


def test_tracing_extensions_and_a_utf8_charset_are_accepted_and_kept() -> None:
    event = permit()
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    event |= {
        "traceparent": traceparent,
        "tracestate": "zhifa=1",
        "datacontenttype": "application/json; charset=utf-8",
    }
    parsed = parse_event(orjson.dumps(event), now=NOW, clock_skew_s=300)
    assert (parsed.traceparent, parsed.tracestate) == (traceparent, "zhifa=1")
    event["traceparent"] = "not-a-trace"
    event["datacontenttype"] = "text/xml"
    errors = rejection(event)
    assert errors["traceparent"].rule == "string_pattern_mismatch"
    assert errors["datacontenttype"].rule == "content_type"


def test_time_in_the_future_beyond_the_clock_skew_is_refused() -> None:
    event = permit()
    event["time"] = (NOW + timedelta(minutes=6)).isoformat()
    assert rejection(event)["time"].rule == "time_in_future"
    event["time"] = (NOW + timedelta(minutes=4)).isoformat()
    assert parse_event(orjson.dumps(event), now=NOW, clock_skew_s=300).time > NOW


def test_a_time_in_the_future_is_explained_in_beijing_time_whatever_offset_it_came_with() -> None:
    event = permit()
    event["time"] = (NOW + timedelta(hours=2)).astimezone(UTC).isoformat()  # sent as +00:00
    error = rejection(event)["time"]
    shown = (NOW + timedelta(hours=2)).astimezone(SHANGHAI).isoformat()
    assert shown in error.message_zh and "+00:00" not in error.message_zh
    assert "（北京时间）" in error.message_zh


def test_the_dashboard_labels_a_field_by_its_whole_name() -> None:
    labels = dict(
        labelled(Permit, {"entity_uscc": "91130982MA0D4XXK3L", "permit_name": "食品经营许可"})
    )
    assert set(labels) == {"统一社会信用代码", "许可事项名称"}


def test_unknown_type_is_refused_listing_the_known_types() -> None:
    event = permit()
    event["type"] = "permit.v9"
    error = rejection(event)["type"]
    assert error.rule == "union_tag_invalid" and "law_change.v1" in error.message_zh


def test_garbage_bytes_are_a_json_error_on_the_whole_message() -> None:
    assert rejection(b"\xff\xfe\x00 not json")["$"].rule == "json_invalid"


def test_a_json_array_is_not_an_envelope() -> None:
    error = rejection(b"[1, 2]")["$"]
    assert error.rule == "dict_type" and error.message_zh == "应为 JSON 对象"


def test_bad_source_id_is_refused() -> None:
    event = permit()
    event["source"] = "Renqiu SCJG"
    assert rejection(event)["source"].rule == "string_pattern_mismatch"


def test_resident_id_with_bad_check_digit_is_refused() -> None:
    event = sample_event("complaint_outcome", "renqiu-chuan", NOW)
    event["data"]["complainant"]["id_number"] = "110105194912310021"
    assert rejection(event)["data.complainant.id_number"].rule == "resident_id"


def test_resident_id_with_unknown_area_code_is_kept_for_review_not_refused() -> None:
    body = "99999919800101001"
    number = body + ric.calc_check_digit(body + "0")  # stdnum skips the last character
    assert resident_id_needs_review(number)
    event = sample_event("complaint_outcome", "renqiu-chuan", NOW)
    event["data"]["complainant"]["id_number"] = number
    parsed = parse_event(orjson.dumps(event), now=NOW, clock_skew_s=0)
    assert isinstance(parsed.data, ComplaintOutcome) and parsed.data.complainant is not None
    assert parsed.data.complainant.id_number == number


def test_every_rule_code_has_a_chinese_sentence() -> None:
    assert all(zh and en for zh, en in RULES.values())
    for code in ("uscc_check_character", "required_when", "source_mismatch", "outside_county"):
        assert code in RULES
