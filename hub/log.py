"""JSON log lines: a constant event name as the message, the data from ``extra`` as fields.

Every value of a line is masked before it is written: a resident ID number or mobile number that
reaches a log record (in its message, an ``extra`` value or an exception's text) shows as
``130***********1234`` or ``138****0000``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from schemas.personal import mask_values

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record with its ``extra`` fields, personal data masked."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(mask_values(line), ensure_ascii=False)


def configure(level: str, *, stream: TextIO | None = None, file: Path | None = None) -> None:
    """Send every log record as JSON to ``file`` (appending) or ``stream``."""
    handler: logging.Handler
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
