"""Every error the hub raises on purpose; the root and the SDK's errors come from the SDK.

::

    HubError                   (subscribers.errors)
    ├── EventRejected          the hub refused an event (field errors inside)
    ├── HubUnavailable         the hub did not answer or could not store; send again
    │   ├── NatsUnavailable    no NATS server answered at the given address
    │   ├── HubNotFound        the server answers, but the hub's streams are not on it
    │   └── LedgerUnavailable  the ledger database did not answer
    ├── NotAuthorized          the server refused the credentials, or they are another's
    ├── ReaderConflict         another program already reads this organisation's deliveries
    ├── RegistryError          the registry file is unreadable or inconsistent
    ├── ConfigError            a setting is missing or contradicts another
    ├── LedgerVersionError     the ledger was written by another version of the hub
    └── NatsServerError        the embedded nats-server would not start or stop
"""

from __future__ import annotations

from subscribers.errors import (
    EventRejected,
    HubError,
    HubNotFound,
    HubUnavailable,
    NatsUnavailable,
    NotAuthorized,
    ReaderConflict,
)

__all__ = [
    "ConfigError",
    "EventRejected",
    "HubError",
    "HubNotFound",
    "HubUnavailable",
    "LedgerUnavailable",
    "LedgerVersionError",
    "NatsServerError",
    "NatsUnavailable",
    "NotAuthorized",
    "ReaderConflict",
    "RegistryError",
]


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


class LedgerUnavailable(HubUnavailable):
    """The ledger database did not answer (``where`` never shows a password)."""

    def __init__(self, where: str, detail: str) -> None:
        self.where, self.detail = where, detail
        super().__init__(f"台账数据库 {where} 不可用（{detail}）")


class LedgerVersionError(HubError):
    """The ledger's tables were written by a hub with another schema version."""

    def __init__(self, where: str, found: int, expected: int) -> None:
        self.where, self.found, self.expected = where, found, expected
        super().__init__(
            f"台账 {where} 的结构版本为 {found}，本程序需要 {expected}："
            "台账可由事件流完整重建，请运行 hub ledger rebuild --recreate"
            f" / ledger schema version {found}, this hub needs {expected}"
        )


class NatsServerError(HubError):
    """The embedded nats-server did not start, or died."""

    def __init__(self, what: str, detail: str) -> None:
        self.what, self.detail = what, detail
        super().__init__(f"nats-server {what}: {detail}")
