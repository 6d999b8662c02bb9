"""The ops login: HTTP Basic (user ``ops``) in front of the ops page and metrics.

Health and readiness stay open for the probes of a container platform. A hub whose web server
listens beyond loopback must have a password (``HUB_OPS_PASSWORD``): the backlog, the
organisations and the rejections are not for everyone on the county network.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

from hub.config import HubSettings
from hub.errors import ConfigError
from hub.natsd import is_loopback

USER = "ops"
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
CHALLENGE = [
    (b"www-authenticate", 'Basic realm="执法协作信息共享枢纽 运维", charset="UTF-8"'.encode()),
    (b"content-type", b"text/plain; charset=utf-8"),
]


def required_password(settings: HubSettings) -> str | None:
    """The ops password, or ``None`` on loopback without one.

    Raises:
        ConfigError: the web server listens beyond loopback and no password is set.
    """
    if settings.ops_password is not None:
        return settings.ops_password.get_secret_value()
    if not is_loopback(settings.web_host):
        raise ConfigError(
            "HUB_OPS_PASSWORD",
            f"the ops page listens on {settings.web_host} (beyond this machine): set a password",
        )
    return None


class OpsLogin:
    """ASGI middleware: every path but the probes needs ``ops`` and the password."""

    def __init__(self, app: ASGIApp, password: str) -> None:
        self.app, self.password = app, password.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 401 with the login challenge."""
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 401, "headers": CHALLENGE})
        await send({"type": "http.response.body", "body": "需要运维登录（ops）".encode()})

    def _allowed(self, scope: Scope) -> bool:
        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).partition(b":")
        except binascii.Error:
            return False
        return user == USER.encode() and secrets.compare_digest(password, self.password)
