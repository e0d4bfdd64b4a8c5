"""Engine set-up, transactions and migrations for SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
`BEGIN IMMEDIATE`: a deferred transaction that reads and then writes can fail at once with
"database is locked" (the busy handler cannot help it), an immediate one waits its turn.
Reads stay deferred, so they never wait for writers.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import PilahError

log = logging.getLogger("pilah.store")
T = TypeVar("T")
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


class StoreError(PilahError):
    """The database cannot be opened, migrated or written."""


class StoreBusy(StoreError):
    """The database stayed locked by other writers for longer than the retry budget."""


def default_database_url() -> str:
    """SQLite in the repository's `var/` folder: the embedded default that needs no set-up."""
    folder = Path(__file__).resolve().parents[2] / "var"
    return f"sqlite:///{folder / 'pilah.db'}"


def _sqlite_setup(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")  # an acknowledged write survives power loss
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, busy_timeout_ms: int = 30_000) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            hide_parameters=True,  # citizens' comments never reach a log through an error
            connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
            pool_size=8,
            max_overflow=8,
        )
        _sqlite_setup(engine, busy_timeout_ms)
        return engine
    return create_engine(url, hide_parameters=True, pool_pre_ping=True, pool_size=8, max_overflow=8)


def _is_lock_error(exc: OperationalError) -> bool:
    message = str(exc.orig).lower()
    return "locked" in message or "busy" in message or "could not serialize" in message


class Database:
    """An engine plus the two kinds of transaction the store uses."""

    def __init__(self, url: str | None = None, busy_timeout_ms: int = 30_000) -> None:
        self.url = url or default_database_url()
        self.engine = make_engine(self.url, busy_timeout_ms)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(writer, expire_on_commit=False)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    def write(self, work: Callable[[Session], T], attempts: int = 8) -> T:
        """Run `work` in one write transaction; retried (the whole transaction) when the
        database stays locked, so a busy SQLite never surfaces as an error to a client."""
        for attempt in range(1, attempts + 1):
            try:
                with self._write() as session, session.begin():
                    return work(session)
            except OperationalError as exc:
                if not _is_lock_error(exc) or attempt == attempts:
                    if _is_lock_error(exc):
                        raise StoreBusy("the database is busy; try again") from exc
                    raise
                delay = min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0)
                log.warning("database busy, retrying", extra={"attempt": attempt})
                time.sleep(delay)
        raise AssertionError("unreachable")

    def integrity_ok(self) -> bool:
        if not self.is_sqlite:
            return True
        with self.engine.connect() as connection:
            return connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(database: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` (Alembic), creating the database if needed."""
    from alembic import command

    config = alembic_config(database.url)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def open_database(url: str | None = None, upgrade: bool = True) -> Database:
    """The comment store at `url` (default: SQLite in var/), migrated to the newest schema
    unless `upgrade` is off."""
    database = Database(url)
    if upgrade:
        migrate(database)
    return database


def current_revision(database: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ping(database: Database) -> None:
    with database.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
