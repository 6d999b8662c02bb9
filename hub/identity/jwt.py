"""NATS JWTs (operator, account, user) signed with Ed25519 NKeys, and credentials files.

The decentralised model of nats-server: the operator signs accounts, an account signs its users;
the server knows only the operator's JWT and the accounts' (pushed to its resolver), never a
user's secret. Claims follow nats-io/jwt v2.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from typing import Any

import nacl.exceptions
import nacl.signing
import nkeys

from subscribers.credentials import jwt_claims

HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
UNLIMITED = -1
PREFIXES = {
    "operator": nkeys.PREFIX_BYTE_OPERATOR,
    "account": nkeys.PREFIX_BYTE_ACCOUNT,
    "user": nkeys.PREFIX_BYTE_USER,
}


def new_seed(kind: str) -> bytes:
    """A fresh NKey seed for an operator, an account or a user."""
    return bytes(nkeys.encode_seed(os.urandom(32), PREFIXES[kind]))


def keypair(seed: bytes) -> nkeys.KeyPair:
    """The key pair of a seed."""
    return nkeys.from_seed(bytearray(seed))


def public_key(seed: bytes) -> str:
    """The public key (``O…``, ``A…``, ``U…``) of a seed."""
    return bytes(keypair(seed).public_key).decode()


def verify_key(public: str) -> nacl.signing.VerifyKey:
    """The Ed25519 key behind an NKey public key (prefix byte, 32 bytes, CRC-16)."""
    raw = base64.b32decode(public + "=" * (-len(public) % 8))
    return nacl.signing.VerifyKey(raw[1:33])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def encode(subject: str, name: str, nats: dict[str, Any], issuer_seed: bytes) -> str:
    """A signed JWT for ``subject`` (a public key) issued by the holder of ``issuer_seed``."""
    claims: dict[str, Any] = {
        "jti": "",
        "iat": int(time.time()),
        "iss": public_key(issuer_seed),
        "name": name,
        "sub": subject,
        "nats": nats,
    }
    digest = hashlib.sha256(_compact(claims)).digest()
    claims["jti"] = base64.b32encode(digest).rstrip(b"=").decode()
    signing_input = f"{_b64(_compact(HEADER))}.{_b64(_compact(claims))}"
    signature = keypair(issuer_seed).sign(signing_input.encode())
    return f"{signing_input}.{_b64(bytes(signature))}"


def verify(token: str, issuer: str) -> dict[str, Any]:
    """The claims of ``token`` if ``issuer`` (a public key) signed it; ``ValueError`` if not."""
    head, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    try:
        verify_key(issuer).verify(f"{head}.{payload}".encode(), raw)
    except nacl.exceptions.BadSignatureError as exc:
        raise ValueError(f"not signed by {issuer}") from exc
    claims = jwt_claims(token)
    if claims.get("iss") != issuer:
        raise ValueError(f"issued by {claims.get('iss')}, not {issuer}")
    return claims


def operator_claims(system_account: str) -> dict[str, Any]:
    """The operator's own claims, naming the system account."""
    return {"type": "operator", "version": 2, "system_account": system_account}


def account_claims(
    *, jetstream_bytes: int | None, revocations: dict[str, int] | None = None
) -> dict[str, Any]:
    """An account, with JetStream limits (``None``: no JetStream) and revoked users."""
    limits: dict[str, Any] = {
        "subs": UNLIMITED,
        "data": UNLIMITED,
        "payload": UNLIMITED,
        "imports": UNLIMITED,
        "exports": UNLIMITED,
        "wildcards": True,
        "conn": UNLIMITED,
        "leaf": UNLIMITED,
    }
    if jetstream_bytes is not None:
        limits |= {
            "mem_storage": 0,
            "disk_storage": jetstream_bytes,
            "streams": UNLIMITED,
            "consumer": UNLIMITED,
            "max_ack_pending": UNLIMITED,
        }
    claims: dict[str, Any] = {"type": "account", "version": 2, "limits": limits}
    if revocations:
        claims["revocations"] = dict(sorted(revocations.items()))
    return claims


def user_claims(
    *, publish: list[str], subscribe: list[str], responses: bool = False
) -> dict[str, Any]:
    """A user allowed exactly these subjects (and replies to what it received, if ``responses``)."""
    claims: dict[str, Any] = {
        "type": "user",
        "version": 2,
        "pub": {"allow": sorted(set(publish))},
        "sub": {"allow": sorted(set(subscribe))},
        "subs": UNLIMITED,
        "data": UNLIMITED,
        "payload": UNLIMITED,
    }
    if responses:
        claims["resp"] = {"max": 1, "ttl": 0}
    return claims


def credentials_text(token: str, seed: bytes) -> str:
    """The ``.creds`` file of a user: its JWT and its seed."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{token}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed.decode()}\n"
        "------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )
