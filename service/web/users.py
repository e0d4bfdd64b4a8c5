"""Admin users of the web page: create, change password, authenticate (argon2 via pwdlib).

Plain functions over a `Database`, blocking (call them from a worker thread in the app).
`authenticate` spends the same argon2 work whether the user exists or not, and answers only
"this user" or None, so a login form cannot tell an unknown name from a wrong password.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import PilahError
from service.store.db import Database
from service.store.schema import AdminUser, join_tags, split_tags, utcnow

if TYPE_CHECKING:
    from pwdlib import PasswordHash

UserRole = Literal["admin", "viewer"]
ROLES: tuple[str, ...] = ("admin", "viewer")
USERNAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ACCOUNT = re.compile(r"^[^,\s][^,]{0,127}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


class UserError(PilahError):
    """A user cannot be created or changed (bad name or password, name taken, unknown)."""


@dataclass(frozen=True)
class User:
    """A logged-in person as the web page sees it (never the password hash itself)."""

    id: int
    username: str
    role: str
    accounts: frozenset[str] | None
    disabled: bool
    # Changes when the password changes: sessions made before are no longer valid.
    fingerprint: str

    @property
    def can_act(self) -> bool:
        return self.role == "admin"


@lru_cache(maxsize=1)
def hasher() -> PasswordHash:
    from pwdlib import PasswordHash

    return PasswordHash.recommended()  # argon2id


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hasher().hash("pilah-no-such-user-placeholder")


def fingerprint_of(row: AdminUser) -> str:
    material = f"{row.id}:{row.password_hash}:{row.password_changed_at.isoformat()}"
    return hashlib.sha256(material.encode()).hexdigest()[:24]


def _user(row: AdminUser) -> User:
    accounts = split_tags(row.accounts) if row.accounts is not None else None
    return User(
        id=row.id,
        username=row.username,
        role=row.role,
        accounts=frozenset(accounts) if accounts is not None else None,
        disabled=row.disabled,
        fingerprint=fingerprint_of(row),
    )


def check_username(username: str) -> str:
    if not USERNAME.match(username):
        raise UserError("username: 1-64 letters, digits, '.', '_' or '-'")
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"password: at most {MAX_PASSWORD} characters")
    if "\x00" in password:
        raise UserError("password: contains a NUL character")
    return password


def parse_accounts(accounts: Iterable[str] | str | None) -> list[str] | None:
    """Account names from a list or a comma-separated string; None (or empty): all accounts."""
    if accounts is None:
        return None
    items = accounts.split(",") if isinstance(accounts, str) else list(accounts)
    names = sorted({item.strip() for item in items if item.strip()})
    for name in names:
        if not ACCOUNT.match(name):
            raise UserError("accounts: names of at most 128 characters, separated by commas")
    return names or None


def create_user(
    database: Database,
    username: str,
    password: str,
    accounts: Iterable[str] | str | None = None,
    role: str = "admin",
) -> User:
    """A new enabled user; `accounts` limits what they see (None: every account)."""
    check_username(username)
    check_password(password)
    if role not in ROLES:
        raise UserError(f"role: one of {', '.join(ROLES)}")
    names = parse_accounts(accounts)
    password_hash = hasher().hash(password)

    def work(session: Session) -> User:
        taken = session.scalars(select(AdminUser).where(AdminUser.username == username)).first()
        if taken is not None:
            raise UserError(f"user {username!r} exists already")
        now = utcnow()
        row = AdminUser(
            username=username,
            password_hash=password_hash,
            role=role,
            accounts=join_tags(names) if names is not None else None,
            disabled=False,
            created_at=now,
            password_changed_at=now,
        )
        session.add(row)
        session.flush()
        return _user(row)

    return database.write(work)


def _change(database: Database, username: str, **values: object) -> User:
    def work(session: Session) -> User:
        row = session.scalars(select(AdminUser).where(AdminUser.username == username)).first()
        if row is None:
            raise UserError(f"no user {username!r}")
        for key, value in values.items():
            setattr(row, key, value)
        session.flush()
        return _user(row)

    return database.write(work)


def set_password(database: Database, username: str, password: str) -> User:
    """A new password; the user's existing sessions stop working."""
    check_password(password)
    return _change(
        database, username, password_hash=hasher().hash(password), password_changed_at=utcnow()
    )


def set_disabled(database: Database, username: str, disabled: bool = True) -> User:
    """A disabled user cannot log in, and their open sessions stop working."""
    return _change(database, username, disabled=disabled)


def set_accounts(database: Database, username: str, accounts: Iterable[str] | str | None) -> User:
    names = parse_accounts(accounts)
    return _change(database, username, accounts=join_tags(names) if names is not None else None)


def get_user(database: Database, user_id: int) -> User | None:
    with database.reading() as session:
        row = session.get(AdminUser, user_id)
        return _user(row) if row is not None else None


def list_users(database: Database) -> list[User]:
    with database.reading() as session:
        return [_user(row) for row in session.scalars(select(AdminUser).order_by(AdminUser.id))]


def authenticate(database: Database, username: str, password: str) -> User | None:
    """The user when the name and password match an enabled user, else None (the same argon2
    work in every case). An outdated hash is upgraded on success."""
    row_hash: str | None = None
    user_id: int | None = None
    if USERNAME.match(username) and len(password) <= MAX_PASSWORD:
        with database.reading() as session:
            row = session.scalars(select(AdminUser).where(AdminUser.username == username)).first()
            if row is not None:
                row_hash, user_id = row.password_hash, row.id
    valid, updated = hasher().verify_and_update(password[:MAX_PASSWORD], row_hash or _dummy_hash())
    if not valid or user_id is None:
        return None
    if updated is not None:

        def rehash(session: Session) -> None:
            row = session.get(AdminUser, user_id)
            if row is not None and row.password_hash == row_hash:
                row.password_hash = updated

        database.write(rehash)
    user = get_user(database, user_id)
    if user is None or user.disabled:
        return None
    return user
