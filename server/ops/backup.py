"""Encrypted backups: every table as JSON lines, compressed, encrypted with AES-256-GCM.

File layout: MAGIC, then chunks. Each chunk is `len(4 bytes BE) || nonce(12) || ciphertext+tag`
and authenticates its index and whether it is the last one (AAD), so a truncated, reordered or
edited file is refused. The key is 32 raw bytes, or 64 hex characters, in a key file (keep it
apart from the backups, e.g. on the off-site medium's key escrow).
Restore only into an empty (migrated) database; tables are loaded parent-first.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, func, insert, select, text

from fpverify.server.models import Base

MAGIC = b"FPVBAK1\n"
CHUNK = 1 << 20
# Rows that migrations/create_all seed: restore overwrites them instead of inserting.
SEEDED = {"audit_head": "id", "counters": "name"}


class BackupError(Exception):
    pass


def load_key(path: Path) -> bytes:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise BackupError(f"cannot read key file {path}: {exc.strerror}") from None
    stripped = raw.strip()
    if len(stripped) == 64:
        try:
            return bytes.fromhex(stripped.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            pass
    if len(raw) == 32:
        return raw
    raise BackupError("key file must hold 32 raw bytes or 64 hex characters")


def new_key_file(path: Path) -> None:
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")


def _enc(value):
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dt.datetime):
        return {"$t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"$u": str(value)}
    return value


def _dec(value):
    if isinstance(value, dict):
        if "$b" in value:
            return base64.b64decode(value["$b"])
        if "$t" in value:
            return dt.datetime.fromisoformat(value["$t"])
        if "$u" in value:
            return uuid.UUID(value["$u"])
    return value


def dump_rows(engine: Engine) -> Iterator[dict]:
    """Every row of every table, parent tables first, as {"table": name, "row": {...}}."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            # One snapshot for every table (as pg_dump takes), so a backup of a registry that keeps
            # ingesting never holds a child row without its parent, nor an audit head without its rows.
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        for table in Base.metadata.sorted_tables:
            pk = list(table.primary_key.columns)
            for row in conn.execute(select(table).order_by(*pk)).mappings():
                yield {"table": table.name, "row": {k: _enc(v) for k, v in row.items()}}


def _chunks(data_iter: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    buf = b""
    pending: bytes | None = None
    for piece in data_iter:
        buf += piece
        while len(buf) >= CHUNK:
            if pending is not None:
                yield pending, False
            pending, buf = buf[:CHUNK], buf[CHUNK:]
    if pending is not None:
        if buf:
            yield pending, False
            yield buf, True
        else:
            yield pending, True
    else:
        yield buf, True


def backup(engine: Engine, out: Path, key: bytes) -> dict:
    """Write an encrypted backup of the whole database to `out` (atomically). Returns counts."""
    aes = AESGCM(key)
    counts: dict[str, int] = {}
    comp = zlib.compressobj(6)

    def lines() -> Iterator[bytes]:
        yield comp.compress(json.dumps({"format": "fpverify-backup", "version": 1,
                                        "created_at": dt.datetime.now(dt.UTC).isoformat()}).encode() + b"\n")
        for item in dump_rows(engine):
            counts[item["table"]] = counts.get(item["table"], 0) + 1
            yield comp.compress(json.dumps(item, separators=(",", ":")).encode() + b"\n")
        yield comp.flush()

    out = Path(out)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        for index, (chunk, last) in enumerate(_chunks(lines())):
            nonce = secrets.token_bytes(12)
            ct = aes.encrypt(nonce, chunk, struct.pack(">Q?", index, last))
            f.write(struct.pack(">I", len(ct)) + nonce + ct)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return counts


def read_backup(path: Path, key: bytes) -> Iterator[dict]:
    aes = AESGCM(key)
    decomp = zlib.decompressobj()
    buf = b""
    first = True
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise BackupError("not an fpverify backup file")
        index = 0
        last = False
        while not last:
            head = f.read(4)
            if len(head) < 4:
                raise BackupError("backup file is truncated")
            (n,) = struct.unpack(">I", head)
            nonce, ct = f.read(12), f.read(n)
            if len(ct) < n or len(nonce) < 12:
                raise BackupError("backup file is truncated")
            plain = None
            for flag in (False, True):
                try:
                    plain = aes.decrypt(nonce, ct, struct.pack(">Q?", index, flag))
                    last = flag
                    break
                except Exception:  # noqa: BLE001 - InvalidTag: try the other flag
                    continue
            if plain is None:
                raise BackupError(f"chunk {index} fails authentication: wrong key or altered file")
            buf += decomp.decompress(plain)
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if first:
                    first = False
                    continue
                yield json.loads(line)
            index += 1
        if f.read(1):
            raise BackupError("data after the final chunk")
    buf += decomp.flush()
    if buf.strip():
        raise BackupError("backup ends mid-record")


def restore(engine: Engine, path: Path, key: bytes) -> dict:
    """Load a backup into an empty database with the current schema. All or nothing."""
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    with engine.connect() as conn:
        for t in Base.metadata.sorted_tables:
            n = conn.execute(select(func.count()).select_from(t)).scalar_one()
            if n and t.name not in SEEDED:
                raise BackupError(f"target database is not empty (table {t.name} has {n} rows)")
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        batch: list[dict] = []
        current = None

        def flush():
            if batch:
                conn.execute(insert(tables[current]), batch)
                batch.clear()

        for item in read_backup(path, key):
            name = item["table"]
            if name not in tables:
                raise BackupError(f"backup has unknown table {name}")
            row = {k: _dec(v) for k, v in item["row"].items()}
            counts[name] = counts.get(name, 0) + 1
            if name in SEEDED:
                t = tables[name]
                keycol = SEEDED[name]
                conn.execute(t.delete().where(t.c[keycol] == row[keycol]))
            if name != current:
                flush()
                current = name
            batch.append(row)
            if len(batch) >= 1000:
                flush()
        flush()
        if engine.dialect.name == "postgresql":  # serial sequences must continue after the restored ids
            for t in Base.metadata.sorted_tables:
                for col in t.primary_key.columns:
                    if col.autoincrement is True or (col.autoincrement == "auto" and col.type.python_type is int
                                                     and len(t.primary_key.columns) == 1):
                        seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                           {"t": t.name, "c": col.name}).scalar()
                        if seq:
                            conn.execute(text(f"SELECT setval('{seq}', COALESCE((SELECT MAX({col.name}) FROM "
                                              f"{t.name}), 0) + 1, false)"))
    return counts
