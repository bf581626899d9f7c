"""Who is calling: bearer tokens from the service configuration, roles ``user`` and ``admin``,
and the account each user's QPU time is charged to."""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROLES = ("user", "admin")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class User:
    name: str
    role: str = "user"
    account: str | None = None  # charged for the user's QPU time; None: an account of their own name

    @property
    def charged_account(self) -> str:
        return self.account or self.name

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenAuth:
    """Maps bearer tokens to users; comparisons are constant-time on token digests."""

    def __init__(self, users: dict[str, dict[str, Any]], accounts: dict[str, Any] | None = None) -> None:
        self._by_digest: dict[bytes, User] = {}
        self.accounts = dict(accounts or {})  # budgets the users file sets (beside qmio.qpu.accounts)
        for name, spec in users.items():
            token = str(spec.get("token") or "")
            role = str(spec.get("role", "user"))
            account = spec.get("account")
            if len(token) < 16:
                raise ValueError(f"user {name!r}: token must be at least 16 characters")
            if role not in ROLES:
                raise ValueError(f"user {name!r}: role must be one of {ROLES}, got {role!r}")
            if account is not None and (not isinstance(account, str) or not account.strip()):
                raise ValueError(f"user {name!r}: account must be a name, got {account!r}")
            self._by_digest[_digest(token)] = User(name, role, account)

    @classmethod
    def from_file(cls, path: str | Path) -> TokenAuth:
        data = yaml.safe_load(Path(path).read_text()) or {}
        users = data.get("users", data)
        if not isinstance(users, dict) or not users:
            raise ValueError(f"{path}: expected a mapping 'users: {{name: {{token: ..., role: user|admin, "
                             "account: ...}}}}'")
        accounts = data.get("accounts") if "users" in data else None
        if accounts is not None and not isinstance(accounts, dict):
            raise ValueError(f"{path}: accounts must be a mapping {{name: {{qpu_seconds: ..., period: day|week}}}}")
        return cls(users, accounts)

    async def authenticate(self, authorization: str | None) -> User | None:
        token = bearer_token(authorization)
        if token is None:
            return None
        digest = _digest(token)
        for known, user in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return user
        return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <t>`` (or JupyterHub's ``token <t>``) header."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() not in ("bearer", "token") or not token.strip():
        return None
    return token.strip()


class HubAuth:
    """Identity from JupyterHub: a Hub API token (a user server's ``$JUPYTERHUB_API_TOKEN``).

    Used when the service runs as a Hub-managed service: each user is their Hub user, with no
    separate QPU tokens; Hub admins (or members of ``admin_group``) are QPU admins. The token must
    carry access to this service (``access:services!service=<name>``).
    """

    def __init__(self, admin_group: str | None = None, hub_auth: Any = None,
                 account_groups: tuple[str, ...] = ()) -> None:
        from jupyterhub.services.auth import HubAuth as _HubAuth

        self.hub = hub_auth or _HubAuth(cache_max_age=30)
        self.admin_group = admin_group
        self.account_groups = account_groups  # Hub groups that are accounts: a member is charged to the first
        self.accounts: dict[str, Any] = {}  # no budgets of its own: they come from qmio.qpu.accounts

    async def authenticate(self, authorization: str | None) -> User | None:
        token = bearer_token(authorization)
        if token is None:
            return None
        model = await self.hub.user_for_token(token, sync=False)
        if not model or model.get("kind", "user") != "user":
            log.info("hub auth: token not accepted by the Hub (%s)", "no user" if not model else model.get("kind"))
            return None
        scopes = set(model.get("scopes") or ())
        if self.hub.access_scopes and not self.hub.check_scopes(self.hub.access_scopes, model):
            log.info("hub auth: %s's token lacks %s (has %s)", model.get("name"), self.hub.access_scopes, sorted(scopes))
            return None
        admin = bool(model.get("admin")) or "admin:users" in scopes or (
            self.admin_group is not None and self.admin_group in (model.get("groups") or ())
        )
        groups = model.get("groups") or ()
        account = next((g for g in self.account_groups if g in groups), None)
        return User(model["name"], "admin" if admin else "user", account)


def new_token() -> str:
    return secrets.token_urlsafe(24)
