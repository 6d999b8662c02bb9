"""The credentials authority: the operator, the hub's account, and the identities it issued.

Layout of the store (``HUB_CREDENTIALS_DIR``, by default ``<data dir>/credentials``; every secret
file mode 0600, the directory 0700, nothing of it in the repository)::

    authority/operator.nk operator.jwt     the root of trust; the server knows only the JWT
    authority/system.nk system.jwt         the system account (pushing account updates)
    authority/account.nk account.jwt       the hub's account: every organisation's user is in it
    issued.json                            who was issued which public key, and who was revoked
    hub.creds ops.creds admin.creds sys.creds   the hub's own identities
    orgs/<org>.creds                       organisations' credentials kept here (the demo's)

Adding an organisation needs nothing on the server: its user JWT is signed by the account, which
the server trusts. Revoking one adds its public key to the account JWT's revocations; pushed to
the running server (``$SYS.REQ.CLAIMS.UPDATE``), it closes the organisation's connections and
refuses new ones, without a restart.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.errors import ConfigError
from hub.identity import jwt
from hub.identity.permissions import Permissions, Role
from subscribers.credentials import CredentialsFile, read_credentials

ACCOUNT_NAME = "HUB"
SYSTEM_NAME = "SYS"
OPERATOR_NAME = "zhifa-hub"
DEFAULT_JETSTREAM_BYTES = 100 * 1024**3


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only (created 0600, never briefly wider)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_TRUNC: set it


@dataclass(frozen=True)
class Issued:
    """One identity the authority issued."""

    name: str
    role: Role
    public_key: str
    issued_at: int
    revoked_at: int | None = None
    keys: tuple[str, ...] = ()  # every public key ever issued to it, the current one last

    def as_json(self) -> dict[str, Any]:
        """The ``issued.json`` form."""
        return {
            "name": self.name,
            "role": self.role.value,
            "public_key": self.public_key,
            "issued_at": self.issued_at,
            "revoked_at": self.revoked_at,
            "keys": list(self.keys or (self.public_key,)),
        }


@dataclass(frozen=True)
class ServerTrust:
    """What nats-server needs to trust the authority: the operator and the accounts' JWTs."""

    operator_jwt: str
    system_account: str
    accounts: dict[str, str]  # public key → JWT (preloaded into the server's resolver)


class Authority:
    """Issues and revokes identities; renders what the server needs to trust them."""

    def __init__(self, directory: Path, jetstream_bytes: int = DEFAULT_JETSTREAM_BYTES) -> None:
        self.directory = directory
        self.jetstream_bytes = jetstream_bytes

    # -- the keys --------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        create: bool = False,
        jetstream_bytes: int = DEFAULT_JETSTREAM_BYTES,
    ) -> Authority:
        """The authority in ``directory``; created when missing and ``create`` is set.

        Raises:
            ConfigError: there is no authority there and it may not be created.
        """
        authority = cls(directory, jetstream_bytes)
        if not authority._seed_path("operator").exists():
            if not create:
                raise ConfigError(
                    "HUB_CREDENTIALS_DIR",
                    f"no credentials authority in {directory} (hub up creates one; "
                    "or hub credentials init)",
                )
            authority._create()
        return authority

    def _seed_path(self, name: str) -> Path:
        return self.directory / "authority" / f"{name}.nk"

    def _seed(self, name: str) -> bytes:
        return self._seed_path(name).read_bytes().strip()

    def _create(self) -> None:
        for name, kind in (("operator", "operator"), ("system", "account"), ("account", "account")):
            write_secret(self._seed_path(name), jwt.new_seed(kind).decode() + "\n")
        self._save({"identities": {}, "revoked": {}})
        self._sign_authority()

    def _sign_authority(self) -> None:
        operator = self._seed("operator")
        system = jwt.public_key(self._seed("system"))
        documents = {
            "operator": jwt.encode(
                jwt.public_key(operator), OPERATOR_NAME, jwt.operator_claims(system), operator
            ),
            "system": jwt.encode(
                system, SYSTEM_NAME, jwt.account_claims(jetstream_bytes=None), operator
            ),
        }
        for name, token in documents.items():
            write_secret(self.directory / "authority" / f"{name}.jwt", token + "\n")
        self._sign_account()

    def _sign_account(self) -> str:
        revocations = self._load()["revoked"]
        token = jwt.encode(
            self.account,
            ACCOUNT_NAME,
            jwt.account_claims(jetstream_bytes=self.jetstream_bytes, revocations=revocations),
            self._seed("operator"),
        )
        write_secret(self.directory / "authority" / "account.jwt", token + "\n")
        return token

    @property
    def account(self) -> str:
        """The hub account's public key."""
        return jwt.public_key(self._seed("account"))

    @property
    def system_account(self) -> str:
        """The system account's public key."""
        return jwt.public_key(self._seed("system"))

    def document(self, name: str) -> str:
        """A signed JWT of the authority: ``operator``, ``system`` or ``account``."""
        return (self.directory / "authority" / f"{name}.jwt").read_text(encoding="utf-8").strip()

    def server_trust(self) -> ServerTrust:
        """The operator and accounts a nats-server must trust."""
        return ServerTrust(
            operator_jwt=self.document("operator"),
            system_account=self.system_account,
            accounts={
                self.system_account: self.document("system"),
                self.account: self.document("account"),
            },
        )

    # -- identities ------------------------------------------------------------------------------

    def issue(
        self, name: str, role: Role, permissions: Permissions, *, public_key: str | None = None
    ) -> tuple[str, str | None]:
        """Sign a user JWT for ``name``; returns (JWT, credentials text or None).

        With ``public_key`` (a ``U…`` key the organisation generated) only the JWT is made: the
        seed never leaves the organisation. Without, a key pair is made and the credentials text
        carries its seed, for the organisation alone.
        """
        seed = None if public_key else jwt.new_seed("user")
        subject = public_key or jwt.public_key(seed or b"")
        if not subject.startswith("U"):
            raise ConfigError("--public-key", f"{subject} is not a user public key (U…)")
        token = jwt.encode(
            subject,
            name,
            jwt.user_claims(
                publish=list(permissions.publish),
                subscribe=list(permissions.subscribe),
                responses=permissions.responses,
            ),
            self._seed("account"),
        )
        document = self._load()
        before = document["identities"].get(name)
        earlier = tuple(before.get("keys", [before["public_key"]])) if before else ()
        issued = Issued(name, role, subject, int(time.time()), keys=(*earlier, subject))
        document["identities"][name] = issued.as_json()
        self._save(document)
        return token, jwt.credentials_text(token, seed) if seed else None

    def revoke(self, name: str) -> str:
        """Revoke ``name``'s current key; returns the new account JWT (to push to the server).

        A key once revoked stays revoked, whatever is issued to ``name`` afterwards.
        """
        document = self._load()
        current = document["identities"].get(name)
        if current is None:
            raise ConfigError("ORG", f"{name} has no issued credentials")
        now = int(time.time())
        current["revoked_at"] = now
        document["revoked"][current["public_key"]] = now
        self._save(document)
        return self._sign_account()

    def issued(self) -> list[Issued]:
        """Every identity's current key, in name order."""
        return [
            Issued(
                r["name"],
                Role(r["role"]),
                r["public_key"],
                r["issued_at"],
                r["revoked_at"],
                tuple(r.get("keys", [r["public_key"]])),
            )
            for _, r in sorted(self._load()["identities"].items())
        ]

    def _load(self) -> dict[str, Any]:
        path = self.directory / "issued.json"
        if not path.exists():
            return {"identities": {}, "revoked": {}}
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded

    def _save(self, document: dict[str, Any]) -> None:
        write_secret(
            self.directory / "issued.json", json.dumps(document, ensure_ascii=False, indent=2)
        )

    def system_credentials(self) -> str:
        """Credentials of a system-account user, to push account updates to the servers."""
        seed = jwt.new_seed("user")
        token = jwt.encode(
            jwt.public_key(seed),
            "sys",
            jwt.user_claims(publish=["$SYS.>"], subscribe=["_INBOX.>"]),
            self._seed("system"),
        )
        return jwt.credentials_text(token, seed)


def holder(path: Path) -> CredentialsFile:
    """Who a credentials file belongs to; ``ConfigError`` naming the file when it is not one."""
    try:
        return read_credentials(path)
    except (OSError, ValueError) as exc:
        raise ConfigError("HUB_CREDENTIALS", f"{path}: {exc}") from exc
