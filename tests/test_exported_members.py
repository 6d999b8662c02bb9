from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["hub", "schemas", "subscribers"])
def test_every_exported_name_exists_and_is_listed_once(package: str) -> None:
    module = importlib.import_module(package)
    exported = module.__all__
    assert len(exported) == len(set(exported))
    assert all(hasattr(module, name) for name in exported)


def test_the_sdk_does_not_load_the_hub_process_or_faststream() -> None:
    loaded = "sorted({'faststream', 'hub.service'} & set(sys.modules))"
    code = f"import subscribers, sys; print({loaded})"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"
