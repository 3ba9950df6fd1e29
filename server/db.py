"""Engine and session factory. SQLite (demo) gets WAL, foreign keys and a busy timeout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from fpverify.server.core.config import Settings, get_settings


def make_engine(url: str, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        # pysqlite's own transaction handling defers BEGIN; take the write lock up front instead so
        # concurrent writers queue on busy_timeout rather than failing on a stale snapshot.
        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - trivial
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


class Database:
    """One engine and its session factory; the app, the ingest worker and the CLI each hold one."""

    def __init__(self, url: str | None = None, settings: Settings | None = None):
        self.settings = settings or get_settings()
        self.url = url or self.settings.database_url
        self.engine = make_engine(self.url, echo=self.settings.database_echo)
        self.sessionmaker = make_sessionmaker(self.engine)
        # Set to a server.feed.FeedNotifier to publish TemplatesChanged after commits that changed the feed.
        self.notifier = None
        event.listen(self.sessionmaker, "after_commit", self._after_commit)
        event.listen(self.sessionmaker, "after_rollback", self._after_rollback)

    def _after_commit(self, session: Session) -> None:
        version = session.info.pop("feed_version", None)
        if version is not None and self.notifier is not None:
            self.notifier.notify(version)

    @staticmethod
    def _after_rollback(session: Session) -> None:
        session.info.pop("feed_version", None)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessionmaker() as s:
            yield s

    def create_all(self) -> None:
        """Create the schema straight from the models (tests); production uses `migrate()`."""
        from fpverify.server.models import Base

        Base.metadata.create_all(self.engine)

    def migrate(self, revision: str = "head") -> None:
        upgrade(self.url, revision)

    def dispose(self) -> None:
        self.engine.dispose()


MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)
