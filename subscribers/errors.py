"""Every error the SDK raises on purpose; the hub's own errors grow from the same root.

::

    HubError
    ├── EventRejected          the hub refused an event (field errors inside)
    ├── HubUnavailable         the hub did not answer or could not store; send again
    │   ├── NatsUnavailable    no NATS server answered at the given address
    │   └── HubNotFound        the server answers, but the hub's streams are not on it
    ├── NotAuthorized          the server refused the credentials, or they are another's
    ├── HubKeyMissing          no hub key to check deliveries by (credentials from before it)
    └── ReaderConflict         another program already reads this organisation's deliveries
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.replies import FieldError


class HubError(Exception):
    """Root of every error the hub and its SDK raise on purpose."""


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
        super().__init__(f"枢纽暂不可用（hub unavailable）：{reason}")


class NatsUnavailable(HubUnavailable):
    """No NATS server answered at ``url``."""

    def __init__(self, url: str, detail: str) -> None:
        self.url, self.detail = url, detail
        super().__init__(f"连不上 NATS 服务器 {url}（{detail}）")


class HubNotFound(HubUnavailable):
    """The NATS server answers but holds no stream or consumer of the hub under this root."""

    def __init__(self, what: str, root: str) -> None:
        self.what, self.root = what, root
        super().__init__(
            f"NATS 服务器上没有枢纽的 {what}（主题根 {root}）：枢纽没有在这台服务器上运行，"
            "或 HUB_SUBJECT_ROOT 不同"
        )


class NotAuthorized(HubError):
    """The server refused the connection's credentials (revoked, unknown, missing or damaged).

    Also raised before anything is sent when a connection opened with one organisation's
    credentials is asked to act as another.
    """

    def __init__(self, where: str, credentials: str, detail: str) -> None:
        self.where, self.credentials, self.detail = where, credentials, detail
        super().__init__(
            f"{where} 拒绝了凭据 {credentials}（{detail}）：凭据可能已被吊销、不属于这个枢纽，"
            "或没有提供；请向枢纽管理员申请（hub credentials issue）"
            " / the server refused these credentials"
        )


def check_identity(connected_as: str | None, org: str) -> None:
    """Refuse to act as ``org`` on a connection opened with another organisation's credentials."""
    if connected_as is not None and connected_as != org:
        raise NotAuthorized(
            f"以 {org} 的名义", f"{connected_as} 的凭据", "一个单位的凭据只能以该单位的名义使用"
        )


class HubKeyMissing(HubError):
    """Deliveries cannot be checked: the credentials carry no hub key (or no seed to sign with)."""

    def __init__(self, org: str, credentials: str | None) -> None:
        self.org, self.credentials = org, credentials
        where = credentials or "（连接未使用凭据文件）"
        super().__init__(
            f"{where} 中没有枢纽签名公钥或本单位私钥，无法核验送达的信息并签署回执；"
            f"请向枢纽管理员重新签发 {org} 的凭据（hub credentials issue {org} --replace）"
            " / no hub signing key to check deliveries with"
        )


class ReaderConflict(HubError):
    """Another program already reads ``org``'s deliveries through its durable consumer.

    Two readers of one consumer split the deliveries between them: each would see only part.
    """

    def __init__(self, org: str, waiting: int) -> None:
        self.org, self.waiting = org, waiting
        super().__init__(
            f"已有其他程序在以 {org} 的身份接收（其拉取请求 {waiting} 个正在等待）；"
            "同时接收会分走它的事件。请先停止它，或用只看不签收的 hub tail"
            f" / another program already reads {org}'s deliveries"
        )
