"""The AsyncAPI document passes the official parser (``@asyncapi/parser``, run with Node)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hub.asyncapi import specification
from hub.config import HubSettings

PARSER = "@asyncapi/parser@3.4.0"
CACHE = Path.home() / ".cache" / "zhifa-hub" / "asyncapi-parser"
CHECK = """
import { Parser } from '@asyncapi/parser';
import { readFileSync } from 'fs';
const { diagnostics } = await new Parser().parse(readFileSync(process.argv[2], 'utf8'));
console.log(JSON.stringify(diagnostics.map((d) => ({severity: d.severity, code: d.code,
  message: d.message, path: d.path}))));
"""
NAME = re.compile(r"^[a-zA-Z0-9.\-_]+$")


@pytest.fixture(scope="module")
def parser() -> Path:
    """The official parser, installed once with npm into a cache directory."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js and npm are needed to run the official AsyncAPI parser")
    CACHE.mkdir(parents=True, exist_ok=True)
    if not (CACHE / "node_modules" / "@asyncapi" / "parser").exists():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", PARSER],
            cwd=CACHE,
            check=True,
            timeout=600,
        )
    script = CACHE / "check.mjs"
    script.write_text(CHECK, encoding="utf-8")
    return script


def test_the_official_parser_finds_no_error(parser: Path, tmp_path: Path) -> None:
    document = tmp_path / "asyncapi.json"
    document.write_text(json.dumps(specification(HubSettings())), encoding="utf-8")
    shown = subprocess.run(
        ["node", parser, document], capture_output=True, text=True, timeout=120, check=True
    )
    diagnostics = json.loads(shown.stdout)
    assert [d for d in diagnostics if d["severity"] == 0] == []


def test_component_names_follow_the_spec_and_every_parameter_is_described() -> None:
    document: dict[str, Any] = specification(HubSettings())
    sections = [document["channels"], document["operations"]]
    sections += [s for s in document["components"].values() if isinstance(s, dict)]
    assert [k for section in sections for k in section if not NAME.fullmatch(k)] == []
    for name, channel in document["channels"].items():
        wanted = set(re.findall(r"{(\w+)}", channel["address"]))
        assert set(channel.get("parameters", {})) == wanted, name
