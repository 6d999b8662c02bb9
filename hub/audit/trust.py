"""Who may have written a message of the hub's streams, checked before it counts.

Events and dead-letter receipts carry the hub's seal; an organisation's receipts carry its
signature, by a key the authority issued to it (any it ever held: a receipt stays valid after the
key is replaced). Anything else was written by another identity and is refused by the fan-out,
the ledger and the record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from hub.audit import keys as record_keys
from hub.audit.keys import RecordKeys
from hub.audit.messages import has_seal, sealed
from hub.config import HubSettings
from hub.identity.authority import Authority
from schemas.wire import HEADER_KEY_CHAIN, HEADER_MSG_ID, HEADER_SIGNATURE, Wire
from subscribers.signing import ED25519, signing_input, verify

log = logging.getLogger(__name__)

RELOAD_AFTER_S = 5.0  # an unknown signer: the authority may have issued a key since
VERIFIED_KEPT = 65536  # receipt signatures remembered as valid (the projection's, for the record)


@dataclass
class RecordTrust:
    """The hub's keys and the organisations' public keys."""

    keys: RecordKeys
    wire: Wire
    authority: Authority | None
    org_keys: dict[str, frozenset[str]] = field(default_factory=dict)
    _loaded_at: float = 0.0
    _verified: dict[bytes, str] = field(default_factory=dict)  # digest → signer, oldest first

    @classmethod
    def load(cls, settings: HubSettings) -> RecordTrust:
        """From the credentials store (``HUB_CREDENTIALS_DIR``)."""
        store = settings.credentials_store
        authority = Authority(store) if (store / "issued.json").exists() else None
        trust = cls(record_keys.load(store), settings.wire, authority)
        trust._reload()
        return trust

    def _reload(self) -> None:
        if self.authority is None:
            return
        keys = {i.name: frozenset(i.keys) for i in self.authority.issued()}
        if keys != self.org_keys:
            self._verified.clear()  # a key taken back: what it signed is checked again
        self.org_keys, self._loaded_at = keys, time.monotonic()

    # -- what the hub writes ---------------------------------------------------------------------

    def seal(self, subject: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """``headers`` with the hub's seal."""
        return sealed(self.keys, subject, headers, body)

    def sign_bundle(self, subject: str, msg_id: str, body: bytes) -> str:
        """The hub's signature of a delivery bundle."""
        return self.keys.signer.sign(signing_input(subject, msg_id, body))

    def bundle_headers(self, subject: str, msg_id: str, body: bytes) -> dict[str, str]:
        """A bundle's headers: its id, the hub's signature, and the key chain after a rotation."""
        headers = {
            HEADER_MSG_ID: msg_id,
            HEADER_SIGNATURE: self.sign_bundle(subject, msg_id, body),
        }
        if chain := self.keys.chain:
            headers[HEADER_KEY_CHAIN] = json.dumps(chain, separators=(",", ":"))
        return headers

    # -- checks ----------------------------------------------------------------------------------

    def hub_sealed(self, subject: str, headers: Mapping[str, str], body: bytes) -> bool:
        """The hub wrote this message."""
        return has_seal(self.keys, subject, headers, body)

    def bundle_signed(self, subject: str, headers: Mapping[str, str], body: bytes) -> bool:
        """The hub signed this bundle, with its current key or one it used before."""
        signed = signing_input(subject, headers.get(HEADER_MSG_ID, ""), body)
        signature = headers.get(HEADER_SIGNATURE, "")
        return any(verify(k["public"], signed, signature) for k in reversed(self.keys.history))

    def receipt_writer(self, subject: str, headers: Mapping[str, str], body: bytes) -> str | None:
        """Who wrote a receipt batch: the organisation of its subject, or the hub.

        ``None`` when neither: no hub seal, no valid signature by a key issued to that
        organisation.
        """
        if self.hub_sealed(subject, headers, body):
            return "hub"
        org = self.wire.org_of(subject)
        signature = headers.get(HEADER_SIGNATURE)
        if not signature:
            return None
        signed = signing_input(subject, "", body)
        # the projection and the checkpoints check each receipt batch: the second time, the
        # same bytes and signature were found valid already (a key stays valid for what it signed)
        seen = hashlib.sha256(signature.encode() + b"\n" + signed).digest()
        if self._verified.get(seen) == org:
            return org
        for attempt in range(2):
            if any(
                verify(f"{ED25519}:{key}", signed, signature) for key in self.org_keys.get(org, ())
            ):
                self._remember(seen, org)
                return org
            if attempt or time.monotonic() - self._loaded_at < RELOAD_AFTER_S:
                break
            self._reload()
        return None

    def _remember(self, seen: bytes, org: str) -> None:
        self._verified[seen] = org
        if len(self._verified) > VERIFIED_KEPT:
            del self._verified[next(iter(self._verified))]
