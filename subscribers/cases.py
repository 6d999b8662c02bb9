"""The SDK for the case workflows: upload attachments, fetch them, list one's cases.

::

    desk = CaseClient(nc, "qingxian-liuhe")
    letter = await desk.upload(Path("移交函.pdf").read_bytes(), "移交函.pdf", "transfer_letter")
    # ... put ``letter`` into the ``attachments`` of a case_transfer.v1 and publish it
    cases = await desk.cases(open_only=True)

Case steps themselves are published like any event (``Publisher.publish``); the hub refuses a step
the case does not allow with the usual field errors.
"""

from __future__ import annotations

import json
from typing import Any

import nats.errors
import orjson
from nats.aio.client import Client

from schemas.wire import HEADER_ANSWER_ERROR, HEADER_ATTACHMENT_NAME, Wire
from subscribers.connection import identity_of
from subscribers.errors import HubError, HubUnavailable, check_identity

ATTACHMENT_TIMEOUT_S = 30.0  # a file of a few MiB goes to the object store before the answer


class AttachmentRefused(HubError):
    """The hub would not keep a file (too large, wrong type) or give one (not a party of it)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"附件被拒绝（attachment refused）：{reason}")


class CaseClient:
    """One organisation's access to its cases and their attachments."""

    def __init__(
        self, nc: Client, org: str, *, wire: Wire | None = None, timeout_s: float = 10.0
    ) -> None:
        check_identity(identity_of(nc), org)
        self.nc, self.org, self.wire, self.timeout_s = nc, org, wire or Wire(), timeout_s

    async def upload(self, data: bytes, name: str, kind: str) -> dict[str, str]:
        """Upload a file; the attachment to put in a case step (``kind``, ``name``, ``sha256``).

        Raises:
            AttachmentRefused: too large, or not a PDF, OFD, JPEG, PNG or DOCX document.
            HubUnavailable: no answer.
        """
        answer = await self._ask(
            self.wire.attach(self.org),
            data,
            {HEADER_ATTACHMENT_NAME: json.dumps(name, ensure_ascii=True)},
            ATTACHMENT_TIMEOUT_S,
        )
        kept = orjson.loads(answer)
        return {"kind": kind, "name": name, "sha256": kept["sha256"]}

    async def fetch(self, sha256: str) -> bytes:
        """The file with this digest, if this organisation uploaded it or is party to its case.

        Raises:
            AttachmentRefused: no such file, or not this organisation's to read.
        """
        return await self._ask(self.wire.attachment(self.org), sha256.encode(), {}, self.timeout_s)

    async def cases(self, *, open_only: bool = False) -> list[dict[str, Any]]:
        """This organisation's cases, newest first, with their deadlines (Chinese labels)."""
        asked = orjson.dumps({"open_only": open_only})
        found: list[dict[str, Any]] = orjson.loads(
            await self._ask(self.wire.cases(self.org), asked, {}, self.timeout_s)
        )
        return found

    async def _ask(
        self, subject: str, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> bytes:
        try:
            msg = await self.nc.request(subject, body, timeout=timeout_s, headers=headers or None)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise HubUnavailable(f"{subject}: {type(exc).__name__}") from exc
        if error := (msg.headers or {}).get(HEADER_ANSWER_ERROR):
            raise AttachmentRefused(json.loads(error))
        return bytes(msg.data)
