"""What of a stored message the record vouches for: subject, the headers that matter, the body.

A message's *digest* covers its subject, those headers (sorted, one per line) and the SHA-256 (or
SM3) of its body, so that an export may show a masked body yet still prove the original's digest.
The hub *seals* what it alone writes (events, dead-letter receipts): an HMAC over the same input,
which no other identity can make; it tells the hub's messages from ones written by anyone else.
"""

from __future__ import annotations

from collections.abc import Mapping

from nats.aio.msg import Msg

from hub.audit.keys import RecordKeys
from schemas.wire import (
    HEADER_CASE_STATE,
    HEADER_MSG_ID,
    HEADER_PERSONAL_DATA_TO,
    HEADER_PUBLISHED_AT,
    HEADER_RECIPIENTS,
    HEADER_SEAL,
    HEADER_SIGNATURE,
)
from subscribers.signing import digest

MATTERING = (
    HEADER_MSG_ID,
    HEADER_PUBLISHED_AT,
    HEADER_RECIPIENTS,
    HEADER_PERSONAL_DATA_TO,
    HEADER_CASE_STATE,
    HEADER_SEAL,
    HEADER_SIGNATURE,
)


def canonical(
    subject: str, headers: Mapping[str, str], body_digest: bytes, stored: str = ""
) -> bytes:
    """The bytes a message's digest is taken over (``stored``: when the stream stored it)."""
    when = [f"Stored: {stored}"] if stored else []
    lines = [subject, *when, *(f"{h}: {headers[h]}" for h in MATTERING if headers.get(h))]
    return ("\n".join(lines) + "\n").encode() + body_digest


def message_digest(
    suite: str, subject: str, headers: Mapping[str, str], body: bytes, stored: str
) -> str:
    """The digest of a stored message (hex), its stream timestamp included."""
    return digest(suite, canonical(subject, headers, digest(suite, body), stored)).hex()


def stored_text(msg: Msg) -> str:
    """When the stream stored ``msg``, as the digests write it."""
    return msg.metadata.timestamp.isoformat()


def seal_input(subject: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """What the seal covers: the message without the seal and signature themselves."""
    kept = {h: v for h, v in headers.items() if h not in (HEADER_SEAL, HEADER_SIGNATURE)}
    return canonical(subject, kept, body)


def sealed(keys: RecordKeys, subject: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
    """``headers`` with the hub's seal added."""
    return headers | {HEADER_SEAL: keys.seal(seal_input(subject, headers, body))}


def has_seal(keys: RecordKeys, subject: str, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether the hub sealed this message."""
    return keys.sealed(seal_input(subject, headers, body), headers.get(HEADER_SEAL))
