"""Roles one hub process plays at a time, held through expiring leases in a NATS KV bucket.

Several ``hub serve`` processes share the work: ingest is a queue group, so every process takes
part. Fan-out must have a single writer, or a recipient's bundles would interleave out of
acceptance order; the ledger projection of each stream has one writer too (its writes are
idempotent, but processes taking turns on one SQLite writer spend more and write smaller
batches); the overdue watch and the deep ledger check need no twin. Each such role is a key of
the bucket: the process that creates the key plays the role and renews the key every
``RENEW_S``; the bucket's
TTL removes a key nobody renewed, so the role of a process that died is free ``LEASE_S`` after its
last renewal, and another process takes it. A process that cannot renew stops playing before its
lease can have expired, so two never play one role at once; one that stops gracefully deletes
its keys, and the others take over at once.

A process already playing roles looks twice before claiming a free one, so two processes started
together tend to split the roles between them. Each process is also present in a
member slot (a lease like the roles', shared by processes with the same roles); every few
seconds one that plays more than its share (the roles over the members present, rounded up)
hands one over gracefully, so a process that starts late, or comes back, gets its share.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import random
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

LEASE_S = 3.0  # a dead holder's role is free this long after its last renewal
RENEW_S = 0.5
SAFE_S = LEASE_S * 0.6  # unrenewed this long: stop playing before the lease can expire
MEMBER_SLOTS = 16  # hub processes with the same roles that count towards the shares
REBALANCE_ROUNDS = 10  # renewals between looks at the shares (5 s)
HANDOVER_S = 5.0  # a role handed over is not claimed back by the same process for this long

ROLE_ZH = {
    "fanout": "扇出投递",
    "checkpoints": "审计检查点",
    "overdue": "案件期限监测",
    "ledger-events": "台账登记事件",
    "ledger-receipts": "台账登记回执",
    "ledger-check": "台账重算核对",
}

Play = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
"""A role's work: runs until the event is set, then finishes what it holds and returns."""
Seen = Callable[[str, bool], None]
"""Told when this process starts (True) or stops (False) playing a role."""


def holder_name() -> str:
    """This process, as the leases name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def holder(kv: KeyValue, role: str) -> str:
    """Who plays ``role`` ("host:pid"), or "" when nobody does.

    Nobody: its lease expired, or it is being handed over and not claimed again yet.
    """
    try:
        entry = await kv.get(role)
    except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
        return ""
    return bytes(entry.value or b"").decode()


@dataclass
class _Playing:
    revision: int
    renewed: float
    stop: asyncio.Event
    task: asyncio.Task[None]


class Roles:
    """Claims, renews and releases this process's roles, and runs their work while held."""

    def __init__(
        self,
        kv: KeyValue,
        plays: dict[str, Play],
        *,
        holder: str | None = None,
        seen: Seen | None = None,
    ) -> None:
        self.kv, self.plays = kv, plays
        self.holder = holder or holder_name()
        self.seen = seen
        self.playing: dict[str, _Playing] = {}
        self._free_since: dict[str, float] = {}
        self._handed_over: dict[str, float] = {}
        names = ",".join(sorted(plays)).encode()
        self._members = f"member.{hashlib.sha256(names).hexdigest()[:12]}"
        self._slot: tuple[str, int] | None = None  # (key, revision)

    def document(self) -> dict[str, Any]:
        """What the ops page shows: this process, and the roles it plays now (in Chinese)."""
        return {
            "holder": self.holder,
            "playing": [ROLE_ZH.get(r, r) for r in self.plays if r in self.playing],
            "elsewhere": [ROLE_ZH.get(r, r) for r in self.plays if r not in self.playing],
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Hold what can be held until ``stop``; then finish each role's work and release it.

        Raises whatever a role's work raised (the hub stops, as it would without leases).
        """
        order = list(self.plays)
        random.shuffle(order)  # processes started together try the roles in different orders
        rounds = 0
        try:
            while not stop.is_set():
                await self._renew()
                await self._be_present()
                rounds += 1
                if rounds % REBALANCE_ROUNDS == 0:
                    await self._rebalance()
                await self._claim(order)
                try:
                    async with asyncio.timeout(RENEW_S):
                        await stop.wait()
                except TimeoutError:
                    continue
        finally:
            for role in list(self.playing):
                if failure := await self._stop_playing(role, release=True):
                    log.error("role.failed", extra={"role": role}, exc_info=failure)
            await self._leave()

    async def _be_present(self) -> None:
        """Hold (or renew) a member slot: the others count this process in their shares."""
        try:
            if self._slot is not None:
                key, revision = self._slot
                self._slot = (key, await self.kv.update(key, self.holder.encode(), last=revision))
                return
            for n in range(MEMBER_SLOTS):
                key = f"{self._members}.{n}"
                try:
                    self._slot = (key, await self.kv.create(key, self.holder.encode()))
                    return
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue  # another process's slot
        except nats.js.errors.KeyWrongLastSequenceError:
            self._slot = None  # it expired and was taken: another slot next round
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("role.presence_deferred", extra={"error": repr(exc)})

    async def _leave(self) -> None:
        if self._slot is None:
            return
        key, revision = self._slot
        try:
            await self.kv.delete(key, last=revision)
        except (nats.errors.Error, TimeoutError) as exc:  # it expires by itself
            log.warning("role.leave_failed", extra={"error": repr(exc)})

    async def _present(self) -> int | None:
        """How many processes with these roles are present (None: cannot tell now).

        Every slot is read at once: one after another, a loaded server's answers delayed the
        next renewal by their sum.
        """
        slots = (self.kv.get(f"{self._members}.{n}") for n in range(MEMBER_SLOTS))
        answers = await asyncio.gather(*slots, return_exceptions=True)
        count = 0
        for answer in answers:
            if isinstance(answer, nats.js.errors.KeyNotFoundError | nats.js.errors.KeyDeletedError):
                continue
            if isinstance(answer, nats.errors.Error | TimeoutError):
                return None
            if isinstance(answer, BaseException):
                raise answer
            count += 1
        return count or None

    async def _rebalance(self) -> None:
        """Hand one role over when this process plays more than its share."""
        present = await self._present()
        if present is None or len(self.playing) <= math.ceil(len(self.plays) / present):
            return
        role = next(reversed(self.playing))  # the one taken last
        log.info("role.handed_over", extra={"role": role, "holder": self.holder, "of": present})
        self._handed_over[role] = time.monotonic() + HANDOVER_S
        if failure := await self._stop_playing(role, release=True):
            raise failure

    async def _renew(self) -> None:
        """Renew every lease held, all at once.

        One after another, a round took the sum of the answers: under load (a filled ledger's
        recomputation beside a day's upload) six of them took 2.8 s, and leases of 3 s expired.
        """
        for role, playing in list(self.playing.items()):
            if playing.task.done():  # its work ended by itself: free the role for any process
                if failure := await self._stop_playing(role, release=True):
                    raise failure  # the hub stops, as it would without leases
        held = list(self.playing.items())
        sent = time.monotonic()  # each lease runs from no earlier than this
        answers = await asyncio.gather(
            *(self.kv.update(role, self.holder.encode(), last=p.revision) for role, p in held),
            return_exceptions=True,
        )
        for (role, playing), answer in zip(held, answers, strict=True):
            if isinstance(answer, int):
                playing.revision, playing.renewed = answer, sent
            elif isinstance(answer, nats.js.errors.KeyWrongLastSequenceError):
                await self._lost_unless_ours(role, playing, sent)
            elif isinstance(answer, nats.errors.Error | TimeoutError):
                if time.monotonic() - playing.renewed > SAFE_S:
                    log.warning("role.unrenewable", extra={"role": role, "error": repr(answer)})
                    if failure := await self._stop_playing(role, release=False):
                        log.error("role.failed", extra={"role": role}, exc_info=failure)
            else:
                raise answer  # not an answer of the server's: a fault of this process

    async def _lost_unless_ours(self, role: str, playing: _Playing, sent: float) -> None:
        if revision := await self._still_ours(role):  # an update whose answer was lost
            playing.revision, playing.renewed = revision, sent
            return
        log.error("role.lost", extra={"role": role, "holder": self.holder})
        if failure := await self._stop_playing(role, release=False):
            log.error("role.failed", extra={"role": role}, exc_info=failure)

    async def _still_ours(self, role: str) -> int | None:
        """The key's revision if it still names this process (a renewal applied, unanswered)."""
        try:
            entry = await self.kv.get(role)
        except (nats.errors.Error, TimeoutError):  # KeyNotFoundError among them
            return None
        return entry.revision if entry.value == self.holder.encode() else None

    async def _claim(self, order: list[str]) -> None:
        for role in order:
            if role in self.playing or self._handed_over.get(role, 0.0) > time.monotonic():
                continue
            if not await self._patient_enough(role):
                continue
            try:
                revision = await self.kv.create(role, self.holder.encode())
            except nats.js.errors.KeyWrongLastSequenceError:
                self._free_since.pop(role, None)  # another process took it
                continue
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("role.claim_failed", extra={"role": role, "error": repr(exc)})
                continue
            self._start_playing(role, revision)

    async def _patient_enough(self, role: str) -> bool:
        """Claim at once when playing nothing; else a role seen free twice (then see _rebalance)."""
        if not self.playing:
            return True
        try:
            await self.kv.get(role)
            self._free_since.pop(role, None)
            return False
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            now = time.monotonic()
            since = self._free_since.setdefault(role, now)
            return now - since >= RENEW_S  # free for a moment: not one being handed over
        except (nats.errors.Error, TimeoutError):
            return False

    def _start_playing(self, role: str, revision: int) -> None:
        self._free_since.pop(role, None)
        stop = asyncio.Event()
        task = asyncio.create_task(self.plays[role](stop), name=f"role-{role}")
        self.playing[role] = _Playing(revision, time.monotonic(), stop, task)
        log.info("role.playing", extra={"role": role, "holder": self.holder})
        if self.seen is not None:
            self.seen(role, True)

    async def _stop_playing(self, role: str, *, release: bool) -> Exception | None:
        """Stop the role's work (it finishes what it holds); what it failed with, if it did."""
        playing = self.playing.pop(role)
        playing.stop.set()
        failure = None
        try:
            await playing.task
        except Exception as exc:
            failure = exc
        if self.seen is not None:
            self.seen(role, False)
        log.info("role.stopped", extra={"role": role, "holder": self.holder})
        if release:
            try:
                await self.kv.delete(role, last=playing.revision)
            except (nats.errors.Error, TimeoutError) as exc:  # it expires by itself
                log.warning("role.release_failed", extra={"role": role, "error": repr(exc)})
        return failure
