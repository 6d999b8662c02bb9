"""Bearer tokens of the HTTP gateway, one or more per organisation, kept hashed in the store.

``hub credentials token ORG`` prints a new token once; the store keeps only its SHA-256
(``gateway-tokens.json``, mode 600), so a copy of the store does not let anyone publish.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path

from hub.identity.authority import write_secret

TOKENS_FILE = "gateway-tokens.json"
PREFIX = "zhg_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _read(store: Path) -> dict[str, dict[str, str]]:
    path = store / TOKENS_FILE
    if not path.exists():
        return {}
    loaded: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def issue(store: Path, org: str) -> str:
    """A new token for ``org`` (shown once; only its hash is kept)."""
    token = PREFIX + secrets.token_urlsafe(32)
    known = _read(store)
    known[_digest(token)] = {"org": org, "issued_at": datetime.now(UTC).isoformat()}
    write_secret(store / TOKENS_FILE, json.dumps(known, indent=2) + "\n")
    return token


def revoke(store: Path, org: str) -> int:
    """Withdraw every token of ``org``; how many there were."""
    known = _read(store)
    kept = {k: v for k, v in known.items() if v["org"] != org}
    write_secret(store / TOKENS_FILE, json.dumps(kept, indent=2) + "\n")
    return len(known) - len(kept)


class Tokens:
    """The tokens as the gateway checks them (re-read when the file changes)."""

    def __init__(self, store: Path) -> None:
        self.path = store / TOKENS_FILE
        self._known: dict[str, dict[str, str]] = {}
        self._mtime = -1.0

    def org_of(self, token: str) -> str | None:
        """The organisation a token was issued to, or None."""
        mtime = self.path.stat().st_mtime if self.path.exists() else 0.0
        if mtime != self._mtime:
            self._known, self._mtime = _read(self.path.parent), mtime
        wanted = _digest(token)
        for digest, entry in self._known.items():
            if hmac.compare_digest(digest, wanted):
                return entry["org"]
        return None
