from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from hub.envelope import parse_event
from hub.errors import EventRejected
from hub.registry import OrgKind, Registry
from hub.routing import recipients_for
from hub.samples import sample_event

NOW = datetime(2025, 9, 30, 2, 15, tzinfo=UTC)


def route(registry: Registry, category: str, source: str, **envelope: Any) -> tuple[str, ...]:
    event = parse_event(
        orjson.dumps(sample_event(category, source, NOW, **envelope)), now=NOW, clock_skew_s=0
    )
    return recipients_for(event, registry)


def ids(registry: Registry, county: str, *kinds: OrgKind) -> set[str]:
    return {o.id for o in registry.members(county) if o.kind in kinds}


def rejected(registry: Registry, category: str, source: str, **envelope: Any) -> dict[str, str]:
    with pytest.raises(EventRejected) as caught:
        route(registry, category, source, **envelope)
    return {e.field: e.rule for e in caught.value.errors}


def test_department_event_goes_to_every_township_and_street_of_its_county(
    registry: Registry,
) -> None:
    recipients = route(registry, "permit", "renqiu-scjg")
    assert set(recipients) == ids(registry, "renqiu", OrgKind.TOWNSHIP, OrgKind.STREET)
    assert len(recipients) == 19


def test_township_event_goes_to_its_county_departments(registry: Registry) -> None:
    recipients = route(registry, "inspection_record", "renqiu-chuan")
    assert set(recipients) == ids(registry, "renqiu", OrgKind.DEPARTMENT)


def test_township_statistics_also_reach_the_county_government_by_category_rule(
    registry: Registry,
) -> None:
    recipients = route(registry, "statistics", "renqiu-chuan")
    assert set(recipients) == ids(registry, "renqiu", OrgKind.DEPARTMENT, OrgKind.GOVERNMENT)


def test_named_recipients_replace_the_default(registry: Registry) -> None:
    assert route(
        registry, "permit", "renqiu-scjg", recipients=("renqiu-qingta", "renqiu-chuan")
    ) == (
        "renqiu-chuan",
        "renqiu-qingta",
    )


def test_recipient_of_another_county_is_refused_with_both_counties_named(
    registry: Registry,
) -> None:
    with pytest.raises(EventRejected) as caught:
        route(registry, "permit", "renqiu-scjg", recipients=("renqiu-chuan", "qingxian-jinniu"))
    (error,) = caught.value.errors
    assert (error.field, error.rule) == ("recipients[1]", "outside_county")
    assert "青县" in error.message_zh and "任丘市" in error.message_zh


def test_unknown_recipient_is_refused(registry: Registry) -> None:
    errors = rejected(registry, "permit", "renqiu-scjg", recipients=("renqiu-nowhere",))
    assert errors == {"recipients[0]": "unknown_recipient"}


def test_publisher_cannot_name_itself(registry: Registry) -> None:
    assert rejected(registry, "permit", "renqiu-scjg", recipients=("renqiu-scjg",)) == {
        "recipients[0]": "self_recipient"
    }


def test_complainant_data_for_a_non_recipient_is_refused(registry: Registry) -> None:
    errors = rejected(registry, "complaint_outcome", "renqiu-chuan", recipients=("renqiu-zjj",))
    assert errors == {"data.complainant_shared_with[0]": "not_a_recipient"}


def test_publisher_kind_without_routes_must_name_recipients(registry: Registry) -> None:
    assert rejected(registry, "other", "renqiu-bb") == {"recipients": "no_recipients"}
    assert route(registry, "other", "renqiu-bb", recipients=("renqiu-sfj",)) == ("renqiu-sfj",)
