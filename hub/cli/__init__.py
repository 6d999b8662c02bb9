"""The ``hub`` command, one module per command group.

``running`` (up, serve), ``publishing`` (publish, example, tail), ``watching`` (lag, dashboard),
``registry``, ``quarantine``, ``reports``, ``ledger``, ``docs`` (schemas and AsyncAPI export);
``common`` holds what they share, ``root`` the command itself and its exit codes.
"""

from hub.cli import docs, ledger, publishing, quarantine, registry, reports, running, watching
from hub.cli.root import app, main

__all__ = [
    "app",
    "docs",
    "ledger",
    "main",
    "publishing",
    "quarantine",
    "registry",
    "reports",
    "running",
    "watching",
]
