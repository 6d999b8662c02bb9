"""Every error the hub and its SDK raise on purpose.

::

    HubError
    ├── RegistryError          the registry file is unreadable or inconsistent
    ├── ConfigError            a setting is missing or contradicts another
    ├── EventRejected          the hub refused an event (field errors inside)
    ├── HubUnavailable         the hub did not answer or could not store; send again
    └── NatsServerError        the embedded nats-server would not start or stop
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.replies import FieldError


class HubError(Exception):
    """Root of every error the hub raises on purpose."""


class RegistryError(HubError):
    """The registry file cannot be used."""

    def __init__(self, origin: str, field: str, rule: str) -> None:
        self.origin, self.field, self.rule = origin, field, rule
        super().__init__(f"{origin}: {field}: {rule}")


class ConfigError(HubError):
    """A setting is missing or contradicts another."""

    def __init__(self, setting: str, rule: str) -> None:
        self.setting, self.rule = setting, rule
        super().__init__(f"{setting}: {rule}")


class EventRejected(HubError):
    """The hub refused an event; ``errors`` names every field and rule."""

    def __init__(self, errors: Sequence[FieldError], quarantine_seq: int | None = None) -> None:
        self.errors, self.quarantine_seq = tuple(errors), quarantine_seq
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"事件被拒收（event rejected）:\n{lines}")


class HubUnavailable(HubError):
    """The hub did not answer in time or could not store the event; nothing was stored."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"枢纽暂不可用（hub unavailable）: {reason}")


class NatsServerError(HubError):
    """The embedded nats-server did not start, or died."""

    def __init__(self, what: str, detail: str) -> None:
        self.what, self.detail = what, detail
        super().__init__(f"nats-server {what}: {detail}")
