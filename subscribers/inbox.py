"""A township's (or department's) own record of what was shared with it: a local SQLite inbox.

The dashboard reads it; a recipient handler writes it::

    inbox = await Inbox.open(Path("inbox.sqlite3"), "renqiu-chuan")
    await Recipient(nc, "renqiu-chuan").run(inbox.record, stop)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import aiosqlite
from pydantic import BaseModel

from schemas.envelope import Event, label_of, summary_zh
from schemas.shanghai import end_of_day, local_text, shanghai_day
from subscribers.recipient import Delivery

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    key TEXT PRIMARY KEY,
    category TEXT NOT NULL,
    source TEXT NOT NULL,
    formed_at TEXT NOT NULL,
    published_at TEXT NOT NULL,
    handled_at TEXT NOT NULL,
    redacted INTEGER NOT NULL,
    summary TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_newest ON inbox (published_at DESC);
"""


@dataclass(frozen=True)
class Entry:
    """One event as the inbox keeps it."""

    key: str
    category: str
    source: str
    formed_at: datetime
    published_at: datetime
    handled_at: datetime
    redacted: bool
    summary: str
    event: dict[str, Any]

    @property
    def on_time(self) -> bool:
        """Handled before the end of the Shanghai day on which it was formed (Art. 16)."""
        return self.handled_at < end_of_day(shanghai_day(self.formed_at))

    def listing(self) -> dict[str, Any]:
        """The entry as the list view shows it."""
        return {
            "key": self.key,
            "category": self.category,
            "category_name": label_of(self.category),
            "source": self.source,
            "formed_at": local_text(self.formed_at),
            "published_at": local_text(self.published_at),
            "handled_at": local_text(self.handled_at),
            "on_time": self.on_time,
            "redacted": self.redacted,
            "summary": self.summary,
        }


class Inbox:
    """The inbox of one organisation."""

    def __init__(self, db: aiosqlite.Connection, org: str) -> None:
        self.db, self.org = db, org

    @classmethod
    async def open(cls, path: Path, org: str) -> Inbox:
        """Open (creating if needed) the inbox file."""
        db = await aiosqlite.connect(path)
        await db.executescript(SCHEMA)
        await db.commit()
        return cls(db, org)

    async def close(self) -> None:
        """Close the file."""
        await self.db.close()

    async def record(self, event: Event, delivery: Delivery) -> None:
        """Keep one delivered event (a repeat of a key changes nothing)."""
        await self.db.execute(
            "INSERT OR IGNORE INTO inbox VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.key,
                event.category,
                event.source,
                event.time.astimezone(UTC).isoformat(),
                delivery.published_at.astimezone(UTC).isoformat(),
                datetime.now(UTC).isoformat(),
                int(delivery.redacted),
                summary_zh(event),
                event.model_dump_json(exclude_none=True),
            ),
        )
        await self.db.commit()

    async def entries(self, category: str | None = None, limit: int = 200) -> list[Entry]:
        """The newest entries first, of one category or all."""
        query = "SELECT * FROM inbox"
        args: tuple[Any, ...] = ()
        if category:
            query, args = query + " WHERE category = ?", (category,)
        async with self.db.execute(
            query + " ORDER BY published_at DESC LIMIT ?", (*args, limit)
        ) as rows:
            return [_entry(row) async for row in rows]

    async def entry(self, key: str) -> Entry | None:
        """One entry by its key."""
        async with self.db.execute("SELECT * FROM inbox WHERE key = ?", (key,)) as rows:
            row = await rows.fetchone()
        return _entry(row) if row else None

    async def counts(self) -> dict[str, dict[str, int]]:
        """Per category: received, handled on time, late."""
        found: dict[str, dict[str, int]] = {}
        for entry in await self.entries(limit=1_000_000):
            tally = found.setdefault(entry.category, {"received": 0, "on_time": 0, "late": 0})
            tally["received"] += 1
            tally["on_time" if entry.on_time else "late"] += 1
        return found


def _entry(row: Any) -> Entry:
    key, category, source, formed, published, handled, redacted, summary, event = row
    return Entry(
        key=key,
        category=category,
        source=source,
        formed_at=datetime.fromisoformat(formed),
        published_at=datetime.fromisoformat(published),
        handled_at=datetime.fromisoformat(handled),
        redacted=bool(redacted),
        summary=summary,
        event=json.loads(event),
    )


def labelled(
    model: type[BaseModel], values: dict[str, Any], prefix: str = ""
) -> Iterator[tuple[str, str]]:
    """(Chinese label, value) for every field given, nested models flattened, in model order."""
    for name, info in model.model_fields.items():
        if name not in values:
            continue
        description = info.description or name
        label = prefix + _label(description)
        value = values[name]
        inner = _model_of(info.annotation)
        if inner is not None and isinstance(value, dict):
            yield from labelled(inner, value, f"{label} · ")
        elif inner is not None and isinstance(value, list):
            for index, item in enumerate(value, 1):
                yield from labelled(inner, item, f"{label} {index} · ")
        else:
            yield label, _named(description, _text(value))


def _label(description: str) -> str:
    """The name in a field description: "施行（或废止）日期，不得早于…" → "施行（或废止）日期".

    The name ends at the first "：" or "，" outside parentheses; a note in parentheses at its end
    ("统一社会信用代码（18 位，含校验码）") is dropped.
    """
    depth, end = 0, len(description)
    for index, char in enumerate(description):
        depth += {"（": 1, "(": 1, "）": -1, ")": -1}.get(char, 0)
        if depth == 0 and char in "：，":
            end = index
            break
    head = description[:end]
    return re.sub("[（(][^（）()]*[）)]$", "", head) or head


def _named(description: str, value: str) -> str:
    """An enum value with its Chinese name, read from the description ("granted 准予许可、…")."""
    found = re.search(rf"(?:^|[：、/ ]){re.escape(value)} ([^、/（）]+)", description)
    return f"{found.group(1).strip()}（{value}）" if found else value


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        for inner in getattr(candidate, "__args__", ()):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "、".join(_text(v) for v in value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "是" if value else "否"
    return str(value)
