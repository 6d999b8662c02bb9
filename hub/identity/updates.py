"""Pushing a changed account (a revocation) to the running servers, without a restart."""

from __future__ import annotations

import json

from hub.config import HubSettings
from hub.errors import ConfigError, HubUnavailable
from hub.identity.authority import Authority
from hub.identity.sessions import trusted_ca
from subscribers.connection import connect

CLAIMS_UPDATE = "$SYS.REQ.CLAIMS.UPDATE"
ATTEMPTS = 3


async def push_account(settings: HubSettings, authority: Authority) -> str:
    """Send the account's current JWT to the servers at ``settings.nats_url``; their answer.

    The servers of a cluster pass it on to each other (the full resolver); each closes the
    connections of users the account now revokes.

    Raises:
        HubUnavailable: no server answered, or it refused the update.
    """
    sys_creds = settings.credentials_store / "sys.creds"
    if not sys_creds.exists():
        raise ConfigError("HUB_CREDENTIALS_DIR", f"{sys_creds} is missing (hub credentials init)")
    nc = await connect(
        settings.nats_url,
        name="hub-credentials",
        attempts=ATTEMPTS,
        credentials=sys_creds,
        tls_ca=trusted_ca(settings),
    )
    try:
        reply = await nc.request(
            CLAIMS_UPDATE,
            authority.document("account").encode(),
            timeout=settings.request_timeout_s,
        )
    finally:
        await nc.close()
    answer = json.loads(reply.data)
    if "error" in answer:
        raise HubUnavailable(f"服务器拒绝更新账户：{answer['error'].get('description', answer)}")
    return str(answer.get("data", {}).get("message", "updated"))
