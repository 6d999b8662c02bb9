"""A NATS credentials file (``.creds``): the user JWT the hub issued and the organisation's seed.

The SDK reads the organisation's id from the JWT's ``name`` (never trusting it: the server checks
the signature and the permissions); the seed never leaves the file.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HUB_KEY_BLOCK = "HUB SIGNING KEY"  # the hub's public key, issued with every organisation's file
_BLOCK = re.compile(r"-{3,}BEGIN ([A-Z ]+)-{3,}\s*\n(.+?)\n\s*-{3,}END \1-{3,}", re.S)


@dataclass(frozen=True)
class CredentialsFile:
    """What a credentials file says about its holder."""

    path: Path
    name: str  # the organisation (or hub identity) the JWT was issued to
    public_key: str
    hub_key: str | None = None  # the hub's signing key (``ed25519:N…`` or ``sm2:04…``)

    @property
    def inbox_prefix(self) -> str:
        """The inbox its permissions allow it to receive replies on."""
        return inbox_prefix(self.name)


def inbox_prefix(name: str) -> str:
    """``_INBOX.<name>``: each identity receives replies only under its own prefix."""
    return f"_INBOX.{name}"


def blocks(text: str) -> dict[str, str]:
    """The armoured blocks of a credentials file, by their title."""
    return {title: body.strip() for title, body in _BLOCK.findall(text)}


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (the server verifies)."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def read_credentials(path: Path) -> CredentialsFile:
    """Read a credentials file; ``ValueError`` when it is not one."""
    found = blocks(path.read_text(encoding="utf-8"))
    token = found.get("NATS USER JWT")
    if token is None or "USER NKEY SEED" not in found:
        raise ValueError(f"{path} is not a NATS credentials file (no user JWT and seed)")
    claims = jwt_claims(token)
    return CredentialsFile(
        path, str(claims.get("name", "")), str(claims.get("sub", "")), found.get(HUB_KEY_BLOCK)
    )


def seed_of(path: Path) -> bytes:
    """The NKey seed of a credentials file (to sign the holder's receipts)."""
    found = blocks(path.read_text(encoding="utf-8")).get("USER NKEY SEED")
    if found is None:
        raise ValueError(f"{path} holds no seed")
    return found.encode()
