"""The SDK (``subscribers``) and the wire contract (``schemas``) stand without the hub."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported(package: str) -> dict[str, set[str]]:
    """Module file → the top-level packages it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"), [("subscribers", {"hub"}), ("schemas", {"hub", "subscribers"})]
)
def test_no_module_imports_what_depends_on_it(package: str, forbidden: set[str]) -> None:
    offending = {path: names & forbidden for path, names in imported(package).items()}
    assert {path: names for path, names in offending.items() if names} == {}


def test_the_sdk_loads_and_works_with_the_hub_package_missing() -> None:
    script = """
import sys
sys.modules["hub"] = None  # any import of hub now fails
import subscribers, subscribers.dashboard, subscribers.inbox, subscribers.serving
from subscribers import Publisher, Recipient, compose
from subscribers.errors import EventRejected
event = compose("renqiu-scjg", "other.v1", {"title": "联合执法通知", "content": "正文"})
print(sorted(event))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "'source'" in done.stdout and "'type'" in done.stdout
