"""Who receives an event: its named recipients, or the registry's default for its category.

Every recipient must be a known organisation of the publisher's county; complainant data may only
go to organisations that receive the event.
"""

from __future__ import annotations

from hub.errors import EventRejected
from hub.registry import Registry
from schemas.complaint_outcome import ComplaintOutcome
from schemas.envelope import Event, label_of
from schemas.replies import FieldError
from schemas.rules import explain


def recipients_for(event: Event, registry: Registry) -> tuple[str, ...]:
    """The recipients of ``event`` (published by a registered ``event.source``), sorted.

    Raises:
        EventRejected: a named recipient is unknown, outside the county or the publisher, or
            the rules give no recipient at all.
    """
    publisher = registry.org(event.source)
    errors: list[FieldError] = []
    if event.recipients is None:
        recipients = registry.default_recipients(publisher, event.category)
        if not recipients:
            errors.append(
                explain(
                    "recipients",
                    "no_recipients",
                    {"kind": publisher.kind_zh, "category": label_of(event.category)},
                )
            )
    else:
        recipients = event.recipients
        errors.extend(_foreign(recipients, registry, publisher.id))
    errors.extend(_personal_data_outside(event, set(recipients)))
    if errors:
        raise EventRejected(errors)
    return tuple(sorted(recipients))


def _foreign(
    recipients: tuple[str, ...], registry: Registry, publisher_id: str
) -> list[FieldError]:
    county = registry.county(registry.org(publisher_id).county)
    errors = []
    for index, org_id in enumerate(recipients):
        field = f"recipients[{index}]"
        if org_id == publisher_id:
            errors.append(explain(field, "self_recipient"))
        elif org_id not in registry:
            errors.append(explain(field, "unknown_recipient", {"org": org_id}))
        elif (org := registry.org(org_id)).county != county.id:
            context = {
                "org": org_id,
                "name": org.name,
                "org_county": registry.county(org.county).name,
                "county": county.name,
            }
            errors.append(explain(field, "outside_county", context))
    return errors


def _personal_data_outside(event: Event, recipients: set[str]) -> list[FieldError]:
    if not isinstance(event.data, ComplaintOutcome):
        return []
    return [
        explain(f"data.complainant_shared_with[{i}]", "not_a_recipient", {"org": org})
        for i, org in enumerate(event.data.complainant_shared_with)
        if org not in recipients
    ]
