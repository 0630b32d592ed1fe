"""Database engine, the one transaction helper, and schema (Alembic) management.

SQLite (the default) is opened in WAL mode with a busy timeout, and pysqlite's own transaction handling is
switched off (SQLAlchemy's documented recipe) so that a claiming transaction can start with ``BEGIN IMMEDIATE``:
it takes the write lock up front, so two workers never both read a task as free. PostgreSQL claims with
``SELECT ... FOR UPDATE SKIP LOCKED`` (see :mod:`service.repository`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

import migrations
from supernets.errors import InputError

SQLITE_BUSY_TIMEOUT_MS = 30_000


class StorageError(RuntimeError):
    """A database error (wrapped); ``retryable`` when it is a lost connection / lock timeout worth retrying."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class SchemaOutdatedError(ValueError):
    """The database schema is not at this version's head revision (a user error: the message names the fix)."""


def _sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("sqlite_immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Database:
    """An engine plus session factories: ``transaction()`` for reads/writes, ``transaction(claim=True)`` for
    claims (``BEGIN IMMEDIATE`` on SQLite)."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int | None = None) -> None:
        self.url = url
        self._sqlite_file: Path | None = None
        self._sqlite_inode: tuple[int, int] | None = None  # (device, inode) of the file the connections opened
        kw: dict[str, Any] = {"echo": echo, "future": True}
        if url.startswith("sqlite"):
            kw["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
            if ":memory:" in url or url in ("sqlite://", "sqlite:///"):
                raise InputError("db", "an in-memory SQLite database cannot be shared by workers; use a file")
            path = url.split("///", 1)[-1]
            if path and not path.startswith(":"):
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
                self._sqlite_file = Path(path).expanduser().resolve()
        else:
            kw["pool_pre_ping"] = True  # reconnect transparently after a server restart
            kw["pool_recycle"] = 1800
            if pool_size is not None:
                kw["pool_size"] = pool_size
        try:
            self.engine = create_engine(url, **kw)
        except (SQLAlchemyError, ImportError) as e:  # bad URL / unknown driver
            raise InputError("db", f"cannot use database URL {url!r}: {e}") from None
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        if self.is_sqlite:
            _sqlite_hooks(self.engine)
        self._plain = sessionmaker(self.engine, expire_on_commit=False)
        self._claim = sessionmaker(self.engine.execution_options(sqlite_immediate=True), expire_on_commit=False)

    @contextmanager
    def transaction(self, *, claim: bool = False) -> Iterator[Session]:
        """One unit of work: commit on success, roll back on any error; database errors become
        :class:`StorageError` (``retryable`` for connection loss, lock timeouts, serialization failures)."""
        if self._sqlite_file is not None:
            self._check_sqlite_file()
        session = (self._claim if claim else self._plain)()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as e:
            session.rollback()
            retryable = isinstance(e, OperationalError) or (
                isinstance(e, DBAPIError) and bool(getattr(e, "connection_invalidated", False))
            )
            raise StorageError(f"database error: {type(e).__name__}: {str(e).splitlines()[0]}",
                               retryable=retryable) from e
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _check_sqlite_file(self) -> None:
        """Refuse to work on a SQLite file that was deleted or replaced since it was opened: open connections would
        keep writing into the unlinked file and every write would be lost."""
        assert self._sqlite_file is not None
        try:
            st = self._sqlite_file.stat()
        except FileNotFoundError:
            if self._sqlite_inode is None:
                return  # not created yet (the first connection creates it)
            raise StorageError("the SQLite database file was deleted while the server ran; restart it on a "
                               "restored file (writes are refused, not lost)") from None
        now = (st.st_dev, st.st_ino)
        if self._sqlite_inode is None:
            self._sqlite_inode = now
        elif now != self._sqlite_inode:
            raise StorageError("the SQLite database file was replaced while the server ran; restart the server")

    def dispose(self) -> None:
        """Close pooled connections (e.g. after fork)."""
        self.engine.dispose()


# ---------------------------------------------------------------------------------------------- migrations
def migrations_dir() -> Path:
    """The Alembic script folder, found through the installed ``migrations`` package (works outside the repo)."""
    return Path(migrations.__file__).resolve().parent


def alembic_config(url: str) -> Any:
    """An Alembic ``Config`` for ``url`` without an ini file."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration this version of msunas ships."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None  # the package always ships at least one revision
    return head


def current_revision(db: Database) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    try:
        with db.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read the schema version of {db.url}: {str(e).splitlines()[0]}",
                           retryable=True) from e


def upgrade(url: str, revision: str = "head") -> str:
    """Apply the migrations up to ``revision``; returns the revision now current."""
    db = Database(url)
    try:
        with db.engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        rev = current_revision(db)
    finally:
        db.dispose()
    return rev or "(empty)"


def check_schema(db: Database) -> None:
    """Raise :class:`SchemaOutdatedError` unless the database is at the head revision, naming the fix."""
    cur = current_revision(db)
    head = head_revision()
    if cur != head:
        have = "empty (no msunas tables)" if cur is None else f"at revision {cur}"
        raise SchemaOutdatedError(
            f"database schema of {db.url} is {have}, this msunas needs revision {head}: "
            f"run `msunas db upgrade --db {db.url}`"
        )


def table_names(db: Database) -> list[str]:
    """Tables in the database (for tests and diagnostics)."""
    return sorted(inspect(db.engine).get_table_names())
