"""Case attachments: uploaded once to the hub, stored by SHA-256, given only to a case's parties.

An organisation uploads a file on ``<root>.attach.<org>`` and is answered with its digest; case
steps refer to it by that digest. Files live in a JetStream object store named after the digest;
a key-value bucket records, per digest, who uploaded it and which cases use it, so that only the
uploader and the parties of those cases may fetch it (``<root>.attachment.<org>``), and a file
received in a transfer cannot be transferred again (Art. 7).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

import filetype
import nats.errors
import nats.js.errors
import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from hub.cases.state import CaseKind, CaseState
from hub.config import HubSettings
from hub.errors import EventRejected
from hub.replies import header_text, reply_with
from schemas.case_common import MEDIA_TYPES, StoredAttachment
from schemas.envelope import Event
from schemas.rules import explain
from schemas.wire import HEADER_ANSWER_ERROR, HEADER_ATTACHMENT_NAME

log = logging.getLogger(__name__)

GRANT_RETRIES = 10  # concurrent updates of one digest's grant: compare-and-set, try again
DETECTED = {  # what filetype finds → the media type stored
    "application/pdf": "application/pdf",
    "image/jpeg": "image/jpeg",
    "image/png": "image/png",
    "application/zip": "application/ofd",  # an OFD document is a zip package (GB/T 33190)
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": MEDIA_TYPES[-1],
}


class CaseUse(TypedDict):
    """A case that uses an attachment."""

    kind: str
    receiver: str
    parties: list[str]


@dataclass
class Grant:
    """Who may use one attachment."""

    uploaders: list[str] = field(default_factory=list)
    cases: dict[str, CaseUse] = field(default_factory=dict)

    def allows(self, org: str) -> bool:
        """``org`` uploaded it or is a party of a case that uses it."""
        return org in self.uploaders or any(org in c["parties"] for c in self.cases.values())

    def received_in_transfer(self, org: str) -> str | None:
        """A transfer case ``org`` received this attachment in, if any."""
        return next(
            (
                k
                for k, c in self.cases.items()
                if c["kind"] == CaseKind.TRANSFER and c["receiver"] == org
            ),
            None,
        )


class UploadRefused(ValueError):
    """An upload the hub does not keep: too large, or not a document it accepts."""


def media_type(data: bytes) -> str | None:
    """The accepted media type of ``data`` (by its content, not its name), or ``None``."""
    kind = filetype.guess(data)
    return DETECTED.get(kind.mime) if kind is not None else None


class Attachments:
    """The attachment store of the hub."""

    def __init__(self, objects: ObjectStore, grants: KeyValue, settings: HubSettings) -> None:
        self.objects, self.grants, self.settings = objects, grants, settings

    @classmethod
    async def open(cls, js: JetStreamContext, settings: HubSettings) -> Attachments:
        """Bind to the buckets (made by the admin identity at start-up)."""
        wire = settings.wire
        return cls(
            await js.object_store(wire.attachments_bucket),
            await js.key_value(wire.grants_bucket),
            settings,
        )

    async def upload(self, org: str, data: bytes) -> dict[str, object]:
        """Keep ``data`` uploaded by ``org``; its digest, size and media type.

        Raises:
            UploadRefused: over the size limit, or not a PDF, OFD, JPEG, PNG or DOCX file.
        """
        limit = self.settings.attachment_max_bytes
        if len(data) > limit:
            raise UploadRefused(f"文件 {len(data)} 字节，超过上限 {limit} 字节")
        found = media_type(data)
        if found is None:
            raise UploadRefused("只接受 PDF、OFD、JPEG、PNG 或 DOCX 文件（按内容识别）")
        digest = hashlib.sha256(data).hexdigest()
        try:
            await self.objects.get_info(digest)
        except nats.js.errors.ObjectNotFoundError:
            await self.objects.put(digest, data)
        await self._update(digest, lambda g: _add(g.uploaders, org))
        return {"sha256": digest, "size": len(data), "media_type": found}

    async def grant(self, state: CaseState) -> None:
        """Record that ``state``'s case uses its attachments, with its parties."""
        use = CaseUse(kind=state.kind.value, receiver=state.receiver, parties=list(state.parties))
        for digest in state.digests:
            await self._update(digest, lambda g: g.cases.__setitem__(state.key, use))

    async def check(self, event: Event, opening_transfer: bool) -> None:
        """Every attachment of ``event`` exists and may be used by its source.

        Raises:
            EventRejected: an unknown digest, another's file, or a second transfer (Art. 7).
        """
        attachments: tuple[StoredAttachment, ...] = getattr(event.data, "attachments", ())
        errors = []
        for index, attachment in enumerate(attachments):
            field_ = f"data.attachments[{index}].sha256"
            grant = await self._grant(attachment.sha256)
            if grant is None:
                errors.append(explain(field_, "attachment_unknown", {"sha256": attachment.sha256}))
            elif not grant.allows(event.source):
                errors.append(explain(field_, "attachment_not_yours", {"name": attachment.name}))
            elif opening_transfer and (previous := grant.received_in_transfer(event.source)):
                context = {"previous": previous, "name": attachment.name}
                errors.append(explain(field_, "no_second_transfer", context))
        if errors:
            raise EventRejected(errors)

    async def fetch(self, org: str, digest: str) -> bytes | None:
        """The file, when ``org`` may have it; ``None`` otherwise (or when there is none)."""
        grant = await self._grant(digest)
        if grant is None or not grant.allows(org):
            return None
        return bytes((await self.objects.get(digest)).data or b"")

    async def _grant(self, digest: str) -> Grant | None:
        try:
            entry = await self.grants.get(digest)
        except nats.js.errors.KeyNotFoundError:
            return None
        return Grant(**orjson.loads(entry.value or b"{}"))

    async def _update(self, digest: str, change: Callable[[Grant], None]) -> None:
        """Apply ``change`` to the digest's grant with compare-and-set, retrying on a race."""
        for _ in range(GRANT_RETRIES):
            try:
                entry = await self.grants.get(digest)
                grant, revision = Grant(**orjson.loads(entry.value or b"{}")), entry.revision
            except nats.js.errors.KeyNotFoundError:
                grant, revision = Grant(), None
            change(grant)
            value = orjson.dumps(grant.__dict__)
            try:
                if revision is None:
                    await self.grants.create(digest, value)
                else:
                    await self.grants.update(digest, value, last=revision)
                return
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
        raise nats.errors.Error(f"grant of {digest} kept changing under {GRANT_RETRIES} tries")

    # -- the request/reply endpoints -------------------------------------------------------------

    async def answer_upload(self, msg: Msg) -> None:
        """``<root>.attach.<org>``: keep the file, answer its digest (or why not)."""
        org = self.settings.wire.org_of(msg.subject)
        name = (msg.headers or {}).get(HEADER_ATTACHMENT_NAME, "")
        try:
            kept = await self.upload(org, msg.data)
        except UploadRefused as exc:
            await reply_with(msg, b"", {HEADER_ANSWER_ERROR: header_text(str(exc))})
            return
        log.info("attachment.uploaded", extra={"org": org, "sha256": kept["sha256"], "file": name})
        await reply_with(msg, orjson.dumps(kept))

    async def answer_fetch(self, msg: Msg) -> None:
        """``<root>.attachment.<org>``: the file, if the organisation may have it."""
        org, digest = self.settings.wire.org_of(msg.subject), msg.data.decode(errors="replace")
        found = await self.fetch(org, digest.strip())
        if found is None:
            refusal = "没有这个附件，或本单位不是使用它的案件的当事方"
            await reply_with(msg, b"", {HEADER_ANSWER_ERROR: header_text(refusal)})
            return
        await reply_with(msg, found)


def _add(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)
