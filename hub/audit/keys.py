"""The hub's record keys, kept by the credentials authority beside the identities' keys.

::

    authority/audit.key        the signing key of checkpoints and delivery bundles (0600)
    authority/audit-keys.json  every signing key the hub has used, in order (public keys only)
    authority/seal.key         the secret of the seals on what the hub alone writes (0600)

The signing key is Ed25519 (an NKey) or SM2 (``HUB_AUDIT_SUITE=sm2-sm3``); its public key goes to
every organisation inside its credentials file, and to inspectors with every export. A seal is
an HMAC (SHA-256 or SM3) that only the hub can make and check: it tells the hub's own events and
dead-letter receipts from anything written into its streams by another identity.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gmssl import func, sm3

from hub.errors import ConfigError
from hub.identity.authority import write_secret
from subscribers.signing import SM2, SUITES, Signer, new_signer, rotation_input, signer_of

KEY_FILE, HISTORY_FILE, SEAL_FILE = "audit.key", "audit-keys.json", "seal.key"


@dataclass(frozen=True)
class RecordKeys:
    """The hub's signing key and seal secret."""

    suite: str
    signer: Signer
    seal_secret: bytes
    history: tuple[dict[str, str], ...]  # {"public", "suite", "since", "endorsement"} in order

    @property
    def public(self) -> str:
        """The current signing key's public key (``ed25519:N…`` or ``sm2:04…``)."""
        return self.signer.public

    @property
    def genesis(self) -> str:
        """The first signing key: the one published, that inspectors and organisations trust."""
        return self.history[0]["public"]

    @property
    def chain(self) -> list[list[str]]:
        """Every later key with its predecessor's endorsement (``follow_keys`` walks it)."""
        return [[h["public"], h.get("endorsement", "")] for h in self.history[1:]]

    def seal(self, data: bytes) -> str:
        """The hub's seal over ``data`` (hex)."""
        if SUITES[self.suite] == SM2:
            return _hmac_sm3(self.seal_secret, data).hex()
        return hmac.new(self.seal_secret, data, "sha256").hexdigest()

    def sealed(self, data: bytes, seal: str | None) -> bool:
        """Whether ``seal`` is the hub's over ``data``."""
        return seal is not None and hmac.compare_digest(self.seal(data), seal)


def _hmac_sm3(key: bytes, data: bytes) -> bytes:
    """HMAC (RFC 2104) over SM3, block size 64 bytes."""
    block = 64
    if len(key) > block:
        key = bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(key)))
    key = key.ljust(block, b"\0")
    inner = bytes(k ^ 0x36 for k in key) + data
    inner_digest = bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(inner)))
    outer = bytes(k ^ 0x5C for k in key) + inner_digest
    return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(outer)))


def _authority(store: Path) -> Path:
    return store / "authority"


def ensure(store: Path, suite: str) -> None:
    """Create the record keys of a new authority (a no-op when they exist)."""
    directory = _authority(store)
    if not (directory / KEY_FILE).exists():
        secret = new_signer(suite)
        write_secret(directory / KEY_FILE, secret + "\n")
        record = {"public": signer_of(secret).public, "suite": suite, "since": _now()}
        write_secret(directory / HISTORY_FILE, json.dumps([record], indent=2) + "\n")
    if not (directory / SEAL_FILE).exists():
        write_secret(directory / SEAL_FILE, secrets.token_hex(32) + "\n")


def load(store: Path) -> RecordKeys:
    """The record keys of the authority in ``store``.

    Raises:
        ConfigError: the authority has none (``hub credentials init`` or ``hub up`` makes them).
    """
    directory = _authority(store)
    try:
        secret = (directory / KEY_FILE).read_text(encoding="utf-8").strip()
        seal = bytes.fromhex((directory / SEAL_FILE).read_text(encoding="utf-8").strip())
        history = json.loads((directory / HISTORY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            "HUB_CREDENTIALS_DIR",
            f"no record keys in {directory} ({exc}); hub credentials init creates them",
        ) from exc
    current = history[-1]
    return RecordKeys(current["suite"], signer_of(secret), seal, tuple(history))


def successor(suite: str) -> str:
    """A new signing key's secret (written by ``rotate`` once its rotation is on record)."""
    return new_signer(suite)


def rotate(store: Path, secret: str) -> tuple[RecordKeys, RecordKeys]:
    """Make ``secret`` the signing key, endorsed by the current one; the keys before and after."""
    before = load(store)
    directory = _authority(store)
    new = signer_of(secret)
    endorsement = before.signer.sign(rotation_input(new.public))
    suite = next(name for name, kind in SUITES.items() if kind == new.public.partition(":")[0])
    record = {"public": new.public, "suite": suite, "since": _now(), "endorsement": endorsement}
    write_secret(directory / KEY_FILE, secret + "\n")
    history = [*before.history, record]
    write_secret(directory / HISTORY_FILE, json.dumps(history, indent=2) + "\n")
    return before, load(store)


def _now() -> str:
    return datetime.now(UTC).isoformat()
