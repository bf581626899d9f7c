"""Who is calling: bearer tokens from the service configuration, roles ``user`` and ``admin``."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROLES = ("user", "admin")


@dataclass(frozen=True)
class User:
    name: str
    role: str = "user"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenAuth:
    """Maps bearer tokens to users; comparisons are constant-time on token digests."""

    def __init__(self, users: dict[str, dict[str, Any]]) -> None:
        self._by_digest: dict[bytes, User] = {}
        for name, spec in users.items():
            token = str(spec.get("token") or "")
            role = str(spec.get("role", "user"))
            if len(token) < 16:
                raise ValueError(f"user {name!r}: token must be at least 16 characters")
            if role not in ROLES:
                raise ValueError(f"user {name!r}: role must be one of {ROLES}, got {role!r}")
            self._by_digest[_digest(token)] = User(name, role)

    @classmethod
    def from_file(cls, path: str | Path) -> TokenAuth:
        data = yaml.safe_load(Path(path).read_text()) or {}
        users = data.get("users", data)
        if not isinstance(users, dict) or not users:
            raise ValueError(f"{path}: expected a mapping 'users: {{name: {{token: ..., role: user|admin}}}}'")
        return cls(users)

    def authenticate(self, authorization: str | None) -> User | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        digest = _digest(authorization[len("Bearer "):].strip())
        for known, user in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return user
        return None

    @property
    def users(self) -> list[User]:
        return list(self._by_digest.values())


def new_token() -> str:
    return secrets.token_urlsafe(24)
