"""Signatures and digests of the record: Ed25519 with SHA-256 by default, SM2 with SM3 (国密).

A public key names its algorithm: ``ed25519:N…`` (an NKey, the machinery of the identities) or
``sm2:04…`` (an uncompressed SM2 point in hex). A signature travels base64-encoded. The hub signs
delivery bundles and audit checkpoints; an organisation's system signs its receipts with the seed
of its own credentials (always Ed25519: NATS identities are NKeys).

SM2 signs ``SM3(Z_A ‖ M)`` where ``Z_A`` binds the signer's identity and key (GB/T 32918.2, with
the default identity ``1234567812345678`` of GM/T 0009); SM3 is GB/T 32905. Both are checked
against the standards' own examples in the tests.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import nacl.exceptions
import nacl.signing
import nkeys
from gmssl import func, sm2, sm3

ED25519, SM2 = "ed25519", "sm2"
SUITES = {"ed25519-sha256": ED25519, "sm2-sm3": SM2}
DEFAULT_SM2_ID = b"1234567812345678"  # GM/T 0009's default signer identity
SM2_CURVE = sm2.default_ecc_table  # the recommended curve of GB/T 32918.5


def sm3_digest(data: bytes) -> bytes:
    """SM3 (GB/T 32905)."""
    return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))


def digest(suite: str, data: bytes) -> bytes:
    """The suite's hash of ``data``: SHA-256, or SM3 for ``sm2-sm3``."""
    return sm3_digest(data) if SUITES[suite] == SM2 else hashlib.sha256(data).digest()


def sm2_za(
    public_xy: str, identity: bytes = DEFAULT_SM2_ID, curve: dict[str, str] = SM2_CURVE
) -> bytes:
    """``Z_A = SM3(ENTL ‖ ID ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A)`` (GB/T 32918.2, 5.5)."""
    entl = (len(identity) * 8).to_bytes(2, "big")
    fields = curve["a"] + curve["b"] + curve["g"] + public_xy
    return sm3_digest(entl + identity + binascii.unhexlify(fields))


def sm2_e(
    message: bytes,
    public_xy: str,
    identity: bytes = DEFAULT_SM2_ID,
    curve: dict[str, str] = SM2_CURVE,
) -> bytes:
    """``e = SM3(Z_A ‖ M)``, the value SM2 signs."""
    return sm3_digest(sm2_za(public_xy, identity, curve) + message)


class Signer(Protocol):
    """A private key that signs."""

    @property
    def public(self) -> str:
        """Its public key, naming the algorithm."""

    def sign(self, data: bytes) -> str:
        """A base64 signature of ``data``."""


@dataclass(frozen=True)
class NkeySigner:
    """Ed25519 through an NKey seed."""

    seed: bytes

    @functools.cached_property
    def _pair(self) -> nkeys.KeyPair:
        return nkeys.from_seed(bytearray(self.seed))  # once: deriving it costs a signature's time

    @property
    def public(self) -> str:
        """``ed25519:N…`` (or ``U…`` for a user's seed)."""
        return f"{ED25519}:{bytes(self._pair.public_key).decode()}"

    def sign(self, data: bytes) -> str:
        """Sign with the seed."""
        return base64.b64encode(self._pair.sign(data)).decode()


@dataclass(frozen=True)
class Sm2Signer:
    """SM2 with SM3 over ``Z_A ‖ M``."""

    private_hex: str
    curve: dict[str, str] = field(default_factory=lambda: dict(SM2_CURVE))

    @functools.cached_property
    def _crypt(self) -> sm2.CryptSM2:
        curve = self.curve  # the public point once: a scalar multiplication in Python
        bare = sm2.CryptSM2(private_key=self.private_hex, public_key="", ecc_table=curve)
        point = bare._kg(int(self.private_hex, 16), curve["g"])
        return sm2.CryptSM2(private_key=self.private_hex, public_key=point, ecc_table=curve)

    @property
    def public(self) -> str:
        """``sm2:04`` followed by x and y in hex."""
        return f"{SM2}:04{self._crypt.public_key}"

    def sign(self, data: bytes) -> str:
        """Sign ``data`` with a fresh random ``k``."""
        crypt = self._crypt
        e = sm2_e(data, crypt.public_key, curve=self.curve)
        found: str | None = None
        while found is None:  # r = 0 or r + k = n: another k (GB/T 32918.2, 6.1 A3-A5)
            found = crypt.sign(e, secrets.token_hex(32))
        return base64.b64encode(bytes.fromhex(found)).decode()


def new_signer(suite: str) -> str:
    """A fresh private key of ``suite``, as the text the authority stores."""
    if SUITES[suite] == SM2:
        n = int(SM2_CURVE["n"], 16)
        return f"{SM2}:{(secrets.randbelow(n - 2) + 1):064x}"
    seed = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_SERVER)
    return f"{ED25519}:{bytes(seed).decode()}"


def signer_of(secret: str) -> Signer:
    """The signer of a stored private key (``ed25519:S…`` or ``sm2:<hex>``)."""
    algorithm, _, value = secret.strip().partition(":")
    if algorithm == ED25519:
        return NkeySigner(value.encode())
    if algorithm == SM2:
        return Sm2Signer(value)
    raise ValueError(f"unknown signing algorithm {algorithm!r} (ed25519 or sm2)")


def verify(public: str, data: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is ``public``'s over ``data``; never raises on bad input."""
    algorithm, _, key = public.partition(":")
    try:
        raw = base64.b64decode(signature, validate=True)
        if algorithm == ED25519:
            _ed25519_key(key).verify(data, raw)
            return True
        if algorithm == SM2 and key.startswith("04"):
            crypt = sm2.CryptSM2(private_key="", public_key=key[2:])
            return bool(crypt.verify(raw.hex(), sm2_e(data, key[2:])))
    except (ValueError, binascii.Error, nacl.exceptions.BadSignatureError):
        return False
    return False


@functools.lru_cache(maxsize=4096)
def _ed25519_key(key: str) -> nacl.signing.VerifyKey:
    """An NKey's verifying key, decoded once per key (every receipt and bundle is checked)."""
    decoded = base64.b32decode(key + "=" * (-len(key) % 8))
    return nacl.signing.VerifyKey(decoded[1:33])


def signing_input(subject: str, msg_id: str, body: bytes) -> bytes:
    """What is signed of a message: its subject, de-duplication id and body.

    The subject names the organisation: a signed bundle cannot be moved to another's deliveries.
    """
    return f"{subject}\n{msg_id}\n".encode() + body


ROTATION = "hub.key.rotation"  # what a hub key's endorsement of its successor is made over


def rotation_input(successor: str) -> bytes:
    """What the hub's previous key signs to endorse its next one."""
    return signing_input(ROTATION, successor, b"")


def follow_keys(trusted: str, chain: Sequence[Sequence[str]]) -> list[str]:
    """``trusted`` and each later key endorsed, one after another, by its predecessor.

    ``chain`` is ``[[public, endorsement], …]`` in order; the walk stops at the first link that
    the key before it did not sign, so nobody can add a key of their own.
    """
    keys = [trusted]
    for link in chain:
        if len(link) != 2 or not verify(keys[-1], rotation_input(link[0]), link[1]):
            break
        keys.append(link[0])
    return keys


def parse_chain(text: str | None) -> list[list[str]]:
    """A key chain header (JSON); empty when absent or unreadable."""
    if not text:
        return []
    try:
        chain = json.loads(text)
    except ValueError:
        return []
    if not isinstance(chain, list):
        return []
    return [[str(x) for x in link] for link in chain if isinstance(link, list)]
