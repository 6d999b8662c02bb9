"""The exported JSON Schemas hold by JSON Schema's own validator (``jsonschema``), not ours."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from hub.samples import PAYLOADS, sample_event
from schemas.envelope import CATEGORIES
from tests.helpers import HUB, receipt

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    directory = tmp_path_factory.mktemp("schemas")
    subprocess.run([HUB, "schemas", "export", str(directory)], check=True, capture_output=True)
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in directory.glob("*.json")}


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)  # a valid 2020-12 schema, and it says so
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    return Draft202012Validator(schema)


def test_every_schema_declares_its_dialect_and_the_wire_messages_are_exported(
    exported: dict[str, dict[str, Any]],
) -> None:
    assert {"receipt-batch", "ingest-reply", "delivery-bundle"} <= set(exported)
    assert {c.type for c in CATEGORIES.values()} <= set(exported)
    for schema in exported.values():
        validator(schema)


@pytest.mark.parametrize("category", list(PAYLOADS))
def test_every_sample_event_is_valid_by_its_exported_schema(
    exported: dict[str, dict[str, Any]], category: str
) -> None:
    event = sample_event(category, "renqiu-scjg", NOW, 1)
    errors = list(validator(exported[CATEGORIES[category].type]).iter_errors(event))
    assert errors == []


def test_blank_text_and_a_credit_code_outside_the_alphabet_fail_the_schema_too(
    exported: dict[str, dict[str, Any]],
) -> None:
    check = validator(exported["permit.v1"])
    event = sample_event("permit", "renqiu-scjg", NOW, 1)
    event["data"]["permit_name"] = "   "
    event["data"]["entity_uscc"] = "91130982MA0D4XXK3I"  # I is not in GB 32100's alphabet
    failed = {tuple(e.absolute_path) for e in check.iter_errors(event)}
    assert failed == {("data", "permit_name"), ("data", "entity_uscc")}


def test_a_receipt_batch_is_valid_by_its_schema(exported: dict[str, dict[str, Any]]) -> None:
    one = receipt("2026-11-26T10:00:00+08:00").receipt
    batch = {"recipient": one.recipient, "receipts": [one.model_dump(mode="json")]}
    assert list(validator(exported["receipt-batch"]).iter_errors(batch)) == []
    batch["recipient"] = "Not An Org"
    assert list(validator(exported["receipt-batch"]).iter_errors(batch)) != []
