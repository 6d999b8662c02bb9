"""Identities: who connects as whom, with which credentials, allowed which subjects.

``authority`` issues and revokes (operator, account, user JWTs), ``permissions`` says what each
identity may do, ``jwt`` signs, ``tls`` makes a county's certificates, ``updates`` pushes a
changed account to running servers. This module finds an identity's credentials file.
"""

from __future__ import annotations

from pathlib import Path

from hub.audit import keys as record_keys
from hub.config import HubSettings
from hub.errors import ConfigError
from hub.identity.authority import Authority, Issued, ServerTrust, holder, write_secret
from hub.identity.permissions import Permissions, Role, for_admin, for_hub, for_ops, for_org
from hub.registry import Registry
from subscribers.credentials import HUB_KEY_BLOCK, blocks, jwt_claims, read_credentials

__all__ = [
    "ADMIN",
    "HUB",
    "OPS",
    "Authority",
    "Issued",
    "Permissions",
    "Role",
    "ServerTrust",
    "credentials_for",
    "ensure_demo",
    "ensure_own",
    "org_credentials_path",
    "with_hub_key",
]

HUB, OPS, ADMIN = "_hub", "_ops", "_admin"  # never an organisation's id (those start a-z)
OWN = {HUB: Role.HUB, OPS: Role.OPS, ADMIN: Role.ADMIN}


def org_credentials_path(settings: HubSettings, org: str) -> Path:
    """Where the store keeps an organisation's credentials (the demo's, or issued with --keep)."""
    return settings.credentials_store / "orgs" / f"{org}.creds"


def _own_path(settings: HubSettings, name: str) -> Path:
    return settings.credentials_store / f"{name.lstrip('_')}.creds"


def credentials_for(settings: HubSettings, name: str) -> Path | None:
    """The credentials file to connect as ``name`` (an organisation, or ``_hub``/``_ops``/…).

    ``HUB_CREDENTIALS`` when it holds ``name``'s credentials, else the store's file; ``None``
    when there is none (the server decides whether it lets such a connection in).

    Raises:
        ConfigError: ``HUB_CREDENTIALS`` holds someone else's credentials.
    """
    if settings.credentials is not None:
        found = holder(settings.credentials)
        if found.name != name:
            raise ConfigError(
                "HUB_CREDENTIALS",
                f"{settings.credentials} holds {found.name}'s credentials, not {name}'s",
            )
        return settings.credentials
    path = _own_path(settings, name) if name in OWN else org_credentials_path(settings, name)
    return path if path.exists() else None


def permissions(settings: HubSettings, name: str) -> Permissions:
    """What ``name`` may do under this hub's subject root."""
    wire = settings.wire
    if name == HUB:
        return for_hub(wire, HUB)
    if name == OPS:
        return for_ops(wire, OPS)
    if name == ADMIN:
        return for_admin(ADMIN)
    return for_org(wire, name)


def _current(path: Path, settings: HubSettings, name: str) -> bool:
    """The file exists, was issued for this subject root, and carries the hub's signing key."""
    if not path.exists():
        return False
    found = blocks(path.read_text(encoding="utf-8"))
    token = found.get("NATS USER JWT", "")
    allowed = jwt_claims(token).get("nats", {}).get("pub", {}).get("allow", []) if token else []
    hub_key = record_keys.load(settings.credentials_store).public
    return (
        sorted(allowed) == sorted(set(permissions(settings, name).publish))
        and found.get(HUB_KEY_BLOCK) == hub_key
    )


def with_hub_key(text: str, settings: HubSettings) -> str:
    """Credentials text with the hub's signing key appended: what its deliveries are checked by."""
    hub_key = record_keys.load(settings.credentials_store).public
    return (
        f"{text.rstrip()}\n\n"
        "The hub's signing key: delivery bundles must carry its signature.\n"
        f"-----BEGIN {HUB_KEY_BLOCK}-----\n{hub_key}\n------END {HUB_KEY_BLOCK}------\n"
    )


def issue_into(authority: Authority, settings: HubSettings, name: str, path: Path) -> None:
    """Issue ``name``'s credentials into ``path`` (0600), revoking what it held before."""
    role = OWN.get(name, Role.ORG)
    if any(i.name == name and i.revoked_at is None for i in authority.issued()):
        authority.revoke(name)  # one live key per identity
    _, text = authority.issue(name, role, permissions(settings, name))
    if text is None:
        raise ConfigError(name, "credentials were issued without a seed")
    write_secret(path, with_hub_key(text, settings))


def ensure_own(authority: Authority, settings: HubSettings) -> None:
    """The hub's record keys, and its own identities (hub, ops, admin) for this subject root."""
    record_keys.ensure(settings.credentials_store, settings.audit_suite)
    for name in OWN:
        path = _own_path(settings, name)
        if not _current(path, settings, name):
            issue_into(authority, settings, name, path)
    sys_path = settings.credentials_store / "sys.creds"
    if not sys_path.exists():
        write_secret(sys_path, authority.system_credentials())


def ensure_demo(authority: Authority, settings: HubSettings, registry: Registry) -> None:
    """Development credentials of every organisation never issued any, kept in the store.

    For ``hub up`` only. An organisation that was issued credentials elsewhere, or revoked, is
    left alone: neither a key handed out nor a revocation is undone here. A key kept in the store
    is issued again only when the subject root changed.
    """
    current = {i.name: i for i in authority.issued()}
    for org in registry.organisations:
        path = org_credentials_path(settings, org.id)
        record = current.get(org.id)
        if record is None:
            issue_into(authority, settings, org.id, path)
        elif (
            record.revoked_at is None
            and path.exists()
            and read_credentials(path).public_key == record.public_key
            and not _current(path, settings, org.id)
        ):
            issue_into(authority, settings, org.id, path)
