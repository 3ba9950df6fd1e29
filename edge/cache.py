"""The station's encrypted store (SQLCipher): template cache, card status, delegates, feed version.

The outbox (edge/outbox.py) lives in the same file, so one key protects everything at rest.

- The key is a raw 32-byte key (`PRAGMA key = "x'..'"`): no passphrase KDF per open; the key file
  or systemd credential is the secret.
- Opening checks before it writes anything: a wrong key, a truncated or tampered file raise
  CacheError subclasses with a clear message and leave the file exactly as it was.
- Templates only, never images. `secure_delete` zeroes revoked templates inside the file.
- Schema versions live in `PRAGMA user_version`; MIGRATIONS upgrade an older file in one
  transaction; a file from newer software is refused rather than guessed at.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlcipher3

from fpverify.edge.wire import (
    CardHeld,
    CardStatus,
    HolderRole,
    TemplateAdd,
    TemplateFeed,
    TemplateRevoke,
)

PAGE_SIZE = 4096  # SQLCipher 4 default; every intact file is a whole number of pages
KEY_BYTES = 32


class CacheError(Exception):
    """The station store cannot be used; the message says why and what to do."""


class WrongKeyError(CacheError):
    pass


class CorruptCacheError(CacheError):
    pass


class SchemaError(CacheError):
    pass




# Ordered schema steps: MIGRATIONS[i] upgrades user_version i -> i + 1. Never edit a released step.
MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: cache and outbox
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE templates (
        template_id TEXT PRIMARY KEY,
        card_number TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('holder', 'delegate')),
        delegate_id TEXT,
        valid_until TEXT,
        finger INTEGER NOT NULL,
        quality INTEGER NOT NULL,
        template BLOB NOT NULL,
        version INTEGER NOT NULL
    );
    CREATE INDEX templates_card ON templates (card_number);
    CREATE TABLE cards (
        card_number TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('active', 'blocked')),
        version INTEGER NOT NULL
    );
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        result_id TEXT NOT NULL UNIQUE,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
    # 1 -> 2: a history of every result id ever queued (no card numbers, no biometrics), so an
    # audit (and the durability tests) can compare what was sent with what was recorded.
    """
    CREATE TABLE outbox_history (
        seq INTEGER PRIMARY KEY,
        result_id TEXT NOT NULL UNIQUE,
        outcome TEXT NOT NULL,
        created_at TEXT NOT NULL,
        acked_at TEXT
    );
    INSERT INTO outbox_history (seq, result_id, outcome, created_at)
        SELECT seq, result_id, json_extract(payload, '$.outcome'), created_at FROM outbox;
    """,
    # 2 -> 3: how the site holds each card (issue 18): 'site' (the feed keeps it) or 'fetched' (on
    # demand; the station's policy evicts it, least recently used first). A card with no row is
    # kept (filled before holds existed). evicted_at: dropped here; the feed's changes about it
    # are skipped until it is fetched again or the site comes to hold it.
    """
    CREATE TABLE holds (
        card_number TEXT PRIMARY KEY,
        held TEXT NOT NULL CHECK (held IN ('site', 'fetched')),
        last_used TEXT NOT NULL,
        evicted_at TEXT
    );
    CREATE INDEX holds_fetched ON holds (held, last_used);
    """,
    # 3 -> 4: each template's impostor-cohort statistics (issue 17); null: the raw rule (edge/workflow.py)
    "ALTER TABLE templates ADD COLUMN cohort_mean REAL; ALTER TABLE templates ADD COLUMN cohort_sd REAL",
)
SCHEMA_VERSION = len(MIGRATIONS)
INSERT_TEMPLATE = ("INSERT OR REPLACE INTO templates (template_id, card_number, role, delegate_id, valid_until, "
                   "finger, quality, template, version, cohort_mean, cohort_sd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def parse_key(raw: bytes) -> bytes:
    """A key file holds 32 raw bytes or 64 hex digits (a trailing newline is fine)."""
    if len(raw) == KEY_BYTES:
        return raw
    text = raw.strip()
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise CacheError(f"cache key must be {KEY_BYTES} raw bytes or {2 * KEY_BYTES} hex digits "
                     f"(got {len(raw)} bytes); create one with `fpverify edge keygen`")


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


@dataclass(frozen=True)
class CachedTemplate:
    template_id: str
    card_number: str
    role: HolderRole
    delegate_id: str | None
    valid_until: datetime | None
    finger: int
    quality: int
    template: bytes
    cohort_mean: float | None = None  # impostor-cohort statistics (both or neither; issue 17)
    cohort_sd: float | None = None


class Store:
    """One encrypted SQLite connection shared by the station's threads (serialised by a lock)."""

    def __init__(self, conn: sqlcipher3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.lock = threading.RLock()
        # Fills a miss from the registry (edge/sync.py sets it; edge/fetched.py calls it).
        self.fetcher: Callable[[str], str | None] | None = None

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, key: bytes, create: bool = True) -> Store:
        path = Path(path)
        if len(key) != KEY_BYTES:
            raise CacheError(f"cache key must be {KEY_BYTES} bytes")
        exists = path.exists()
        if not exists and not create:
            raise CacheError(f"no station cache at {path}")
        if exists:
            _check_size(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlcipher3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        try:
            conn.execute("PRAGMA cipher_log_level = NONE")  # errors come back as exceptions instead
            conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
            if exists:
                _verify(conn, path)
            conn.execute("PRAGMA synchronous = FULL")  # a committed result survives power loss
            conn.execute("PRAGMA secure_delete = ON")
            # 32 MB of decrypted pages: a site's indexes (about 100 B a template) stay in memory while
            # a new station fills, instead of being read and decrypted again per insert (issue 18)
            conn.execute("PRAGMA cache_size = -32000")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn, path)
        except BaseException:
            conn.close()
            raise
        if not exists:
            os.chmod(path, 0o600)
        return cls(conn, path)

    def close(self) -> None:
        with self.lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlcipher3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; rolls back on any exception. Commits are durable (FULL sync)."""
        with self.lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (e.g. SQLITE_FULL): keep the original error
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlcipher3.Error):
                        self._conn.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.lock:
            return self._conn.execute(sql, params).fetchall()

    def schema_version(self) -> int:
        return self.query("PRAGMA user_version")[0][0]

    def ensure_tables(self, script: str) -> None:
        """Tables a part keeps in this file beside the cache (edge/staff.py), as `CREATE ... IF NOT
        EXISTS` statements run in one transaction; they do not take a MIGRATIONS step."""
        with self.transaction() as db:
            for statement in _statements(script):
                db.execute(statement)

    # -- meta ----------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def feed_version(self) -> int:
        return int(self.get_meta("feed_version", "0"))

    # -- templates and cards --------------------------------------------------------------------
    def card_status(self, card_number: str) -> str | None:
        rows = self.query("SELECT status FROM cards WHERE card_number = ?", (card_number,))
        return rows[0][0] if rows else None

    def templates_for(self, card_number: str, now: datetime | None = None) -> list[CachedTemplate]:
        """The holder's templates and those of delegates whose authorisation is still valid."""
        now = now or datetime.now(UTC)
        rows = self.query(
            "SELECT template_id, card_number, role, delegate_id, valid_until, finger, quality, template, "
            "cohort_mean, cohort_sd FROM templates WHERE card_number = ? ORDER BY role, template_id", (card_number,))
        out = []
        for r in rows:
            until = datetime.fromisoformat(r[4]) if r[4] else None
            if r[2] == HolderRole.DELEGATE and until is not None and until <= now:
                continue
            out.append(CachedTemplate(r[0], r[1], HolderRole(r[2]), r[3], until, r[5], r[6], bytes(r[7]), r[8], r[9]))
        return out

    def counts(self) -> dict[str, int]:
        return {
            "templates": self.query("SELECT count(*) FROM templates")[0][0],
            "cards": self.query("SELECT count(DISTINCT card_number) FROM templates")[0][0],
            "blocked_cards": self.query("SELECT count(*) FROM cards WHERE status = 'blocked'")[0][0],
            "outbox_pending": self.query("SELECT count(*) FROM outbox")[0][0],
            "results_recorded": self.query("SELECT count(*) FROM outbox_history")[0][0],
        }

    def has_card(self, card_number: str) -> bool:
        """The cache knows the card (a status or a template): no need to ask the registry."""
        return bool(self.query("SELECT 1 FROM cards WHERE card_number = ? UNION ALL "
                               "SELECT 1 FROM templates WHERE card_number = ? LIMIT 1", (card_number, card_number)))

    def apply_feed(self, feed: TemplateFeed) -> int:
        """Apply one validated feed page atomically; returns the new feed version.

        The caller (edge/sync.py) has checked versions and template bytes; this re-checks the
        version chain against the store so a stale or replayed page cannot roll the cache back.
        """
        with self.transaction() as db:
            current = int((db.execute("SELECT value FROM meta WHERE key = 'feed_version'").fetchone()
                           or ("0",))[0])
            if feed.since != current:
                raise CacheError(f"feed page starts at version {feed.since}, cache is at {current}")
            evicted = {r[0] for r in db.execute("SELECT card_number FROM holds WHERE evicted_at IS NOT NULL")}
            now = _iso(datetime.now(UTC))
            for ch in feed.changes:
                if isinstance(ch, CardHeld):
                    if ch.held == "none":  # the site no longer holds the card: drop all of it
                        for table in ("templates", "cards", "holds"):
                            db.execute(f"DELETE FROM {table} WHERE card_number = ?", (ch.card_number,))
                    else:  # the card's full set follows in the feed
                        db.execute("INSERT INTO holds VALUES (?, ?, ?, NULL) ON CONFLICT (card_number) DO UPDATE "
                                   "SET held = excluded.held, evicted_at = NULL", (ch.card_number, ch.held, now))
                    evicted.discard(ch.card_number)
                elif isinstance(ch, TemplateAdd):
                    if ch.card_number not in evicted:  # dropped here by the policy: not refilled piecemeal
                        db.execute(INSERT_TEMPLATE, template_row(ch))
                elif isinstance(ch, TemplateRevoke):
                    db.execute("DELETE FROM templates WHERE template_id = ?", (ch.template_id,))
                elif isinstance(ch, CardStatus):
                    if ch.card_number not in evicted:
                        db.execute("INSERT OR REPLACE INTO cards VALUES (?, ?, ?)",
                                   (ch.card_number, ch.status, ch.version))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('feed_version', ?)", (str(feed.version),))
        return feed.version


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds")  # sorts as it reads


def template_row(ch: TemplateAdd) -> tuple:  # the values of INSERT_TEMPLATE (columns named: steps append some)
    return (ch.template_id, ch.card_number, ch.role.value, ch.delegate_id,
            ch.valid_until.isoformat() if ch.valid_until else None, ch.finger, ch.quality, ch.template, ch.version,
            ch.cohort_mean, ch.cohort_sd)


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size == 0:
        raise CorruptCacheError(f"station cache {path} is empty (0 bytes): truncated? restore it or "
                                f"`fpverify edge wipe` and resync; the file was left as it is")
    if size % PAGE_SIZE:
        raise CorruptCacheError(f"station cache {path} is truncated or damaged ({size} bytes is not a whole "
                                f"number of {PAGE_SIZE}-byte pages); the file was left as it is")


def _verify(conn: sqlcipher3.Connection, path: Path) -> None:
    """Read-only checks, in order: the key opens page 1, every page's HMAC, the b-tree structure."""
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError as exc:
        if "not a database" not in str(exc):
            raise CorruptCacheError(f"station cache {path} failed its integrity check: {exc}; "
                                    f"the file was left as it is") from exc
        raise WrongKeyError(f"cannot decrypt station cache {path}: wrong key, or its first page is damaged "
                            f"({exc}); the file was left as it is") from exc
    try:
        problems = [r[0] for r in conn.execute("PRAGMA cipher_integrity_check").fetchall()]
        if not problems:
            quick = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
            problems = [] if quick == ["ok"] else quick
    except sqlcipher3.DatabaseError as exc:
        problems = [str(exc)]
    if problems:
        shown = "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
        raise CorruptCacheError(f"station cache {path} failed its integrity check: {shown}; "
                                f"the file was left as it is")


def _migrate(conn: sqlcipher3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaError(f"station cache {path} has schema version {version}, newer than this software "
                          f"({SCHEMA_VERSION}); upgrade the software")
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for step in range(version, SCHEMA_VERSION):
            for statement in _statements(MIGRATIONS[step]):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    # executescript() would commit our transaction; split on ';' (the migrations hold no literals with it)
    return [s.strip() for s in script.split(";") if s.strip()]


def wipe(path: str | os.PathLike) -> list[Path]:
    """Overwrite the store (and any journal) with random bytes, fsync, then delete. Returns what was wiped.

    The file is encrypted already; overwriting also defeats anyone who later learns the key.
    (On flash with wear levelling an overwrite is best effort; the key's destruction is what counts.)
    """
    path = Path(path)
    wiped = []
    for p in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        if p.exists():
            size = p.stat().st_size
            with open(p, "r+b") as fh:
                remaining = size
                while remaining > 0:
                    chunk = min(remaining, 1 << 20)
                    fh.write(os.urandom(chunk))
                    remaining -= chunk
                fh.flush()
                os.fsync(fh.fileno())
            p.unlink()
            wiped.append(p)
    return wiped
