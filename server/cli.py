"""`fpverify server ...` commands and `fpverify bench ingest`. Heavy imports stay inside commands."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from fpverify.server.cli_db import database_command

server_app = typer.Typer(no_args_is_help=True, help="The registry: API, ingestion, users, devices, audit, backups.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")
server_app.add_typer(audit_app, name="audit")

DbOpt = typer.Option(None, "--database-url", help="overrides FPVERIFY_DATABASE_URL")


def _settings(serve: bool = False):
    """The settings, or a clear error (exit 2) naming each bad setting. `serve`: also what `run` needs
    (no development secret in production, every TLS file and the CA folder present)."""
    from fpverify.server.core.config import ConfigError, get_settings

    try:
        settings = get_settings()
        if serve:
            settings.check_for_production()
            settings.check_files()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    return settings


def _db(url: str | None):
    from fpverify.server.core.security import set_password_cost
    from fpverify.server.db import Database

    settings = _settings()
    set_password_cost(settings.password_time_cost, settings.password_memory_kib)
    return Database(url or settings.database_url, settings=settings)


@server_app.command()
@database_command
def run(host: str = typer.Option(None, help="default: FPVERIFY_API_HOST"),
        port: int = typer.Option(None, help="default: FPVERIFY_API_PORT"),
        ingest: bool = typer.Option(True, help="also run the MQTT ingest worker (FPVERIFY_MQTT_*)"),
        migrate: bool = typer.Option(True, help="apply database migrations first"),
        database_url: str = DbOpt) -> None:
    """Serve the API (uvicorn) and, unless --no-ingest, the MQTT ingest worker."""
    import logging

    import uvicorn

    from fpverify.server.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _settings(serve=True)
    db = _db(database_url)
    if migrate:
        db.migrate()
    settings = db.settings
    app = create_app(settings, db, start_ingest=ingest and settings.mqtt_enabled)
    uvicorn.run(app, host=host or settings.api_host, port=port or settings.api_port, log_level="info",
                ssl_certfile=settings.api_tls_cert, ssl_keyfile=settings.api_tls_key)


@server_app.command("check")
def check_cmd() -> None:
    """Check the settings (FPVERIFY_*) as `server run` does, starting nothing: exit 2 naming each problem."""
    from sqlalchemy.engine import make_url

    settings = _settings(serve=True)
    typer.echo(f"settings OK: mode {settings.mode}, database {make_url(settings.database_url).drivername}, "
               f"duplicate check at {settings.duplicate_threshold}, every file named is present")


@server_app.command("migrate")
@database_command
def migrate_cmd(revision: str = "head", database_url: str = DbOpt) -> None:
    """Apply the Alembic migrations (alembic upgrade head)."""
    db = _db(database_url)
    db.migrate(revision)
    typer.echo(f"database at {revision}")


@server_app.command("create-user")
@database_command
def create_user(username: str = typer.Option(...), role: str = typer.Option(..., help="sysadmin|enroller|auditor|supervisor"),
                password: str = typer.Option(None, help="default: FPVERIFY_NEW_PASSWORD or a prompt"),
                database_url: str = DbOpt) -> None:
    """Create a staff account of any role, without an approval: the bootstrap of a fresh registry.

    The server's console is the root of trust: whoever runs this already holds the database's
    credentials (and could write any row). Accounts made here are audited with the actor
    "console"; every later account change goes through the API's approvals (docs/server.md)."""
    from fpverify.server.crud import users
    from fpverify.server.crud.errors import DomainError

    password = password or os.environ.get("FPVERIFY_NEW_PASSWORD") or typer.prompt(
        "password", hide_input=True, confirmation_prompt=True)
    db = _db(database_url)
    with db.session() as s:
        try:
            u = users.create_user(s, users.CONSOLE, username, password, role)
        except DomainError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        s.commit()
    typer.echo(f"user {u.username} ({u.role}) created, id {u.id}")


@server_app.command("add-device")
@database_command
def add_device(site: str = typer.Option(...), device_id: str = typer.Option(...), name: str = typer.Option(None),
               database_url: str = DbOpt) -> None:
    """Register a station (creating the site if needed) and print its feed token ONCE.

    Direct, like create-user: the console is the root of trust (audited as "console"). Through the
    API a token needs a supervisor's approval (docs/server.md)."""
    from fpverify.server.crud import devices, users
    from fpverify.server.crud.errors import DomainError

    db = _db(database_url)
    with db.session() as s:
        try:
            dev, token = devices.create_device(s, users.CONSOLE, site, device_id, name, create_site_if_missing=True)
        except DomainError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        s.commit()
    typer.echo(f"device {dev.id} at site {dev.site_id}; token (shown once):")
    typer.echo(token)


@audit_app.command("verify")
@database_command
def audit_verify(database_url: str = DbOpt) -> None:
    """Check the audit chain; exit 1 and name the first bad row if it was edited or cut."""
    from fpverify.server import audit

    db = _db(database_url)
    with db.session() as s:
        report = audit.verify(s)
    typer.echo(str(report))
    if not report.ok:
        raise typer.Exit(1)


def _key(key_file: Path | None) -> bytes:
    from fpverify.server.ops.backup import BackupError, load_key

    path = key_file or _settings().backup_key_file
    if path is None:
        typer.echo("error: give --key-file or set FPVERIFY_BACKUP_KEY_FILE", err=True)
        raise typer.Exit(2)
    try:
        return load_key(path)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@server_app.command("backup")
@database_command
def backup_cmd(out: Path = typer.Option(..., "--out"), key_file: Path = typer.Option(None),
               database_url: str = DbOpt) -> None:
    """Write an encrypted (AES-256-GCM) backup of every table."""
    from fpverify.server.ops.backup import backup

    key = _key(key_file)
    try:
        counts = backup(_db(database_url).engine, out, key)
    except OSError as exc:  # e.g. the off-site store is not mounted
        typer.echo(f"error: cannot write {out}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"backup written to {out}: {sum(counts.values())} rows in {len(counts)} tables")


@server_app.command("restore")
@database_command
def restore_cmd(file: Path = typer.Argument(..., exists=True, dir_okay=False), key_file: Path = typer.Option(None),
                migrate: bool = typer.Option(True),
                database_url: str = DbOpt) -> None:
    """Restore a backup into an EMPTY database (migrated first unless --no-migrate)."""
    from fpverify.server.ops.backup import BackupError, restore

    key = _key(key_file)
    db = _db(database_url)
    if migrate:
        db.migrate()
    try:
        counts = restore(db.engine, file, key)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"restored {sum(counts.values())} rows in {len(counts)} tables")


@server_app.command("new-backup-key")
def new_backup_key(path: Path) -> None:
    """Create a random 256-bit backup key file (mode 600)."""
    from fpverify.server.ops.backup import new_key_file

    new_key_file(path)
    typer.echo(f"key written to {path}; keep it apart from the backups")


@server_app.command("partitions")
@database_command
def partitions_cmd(database_url: str = DbOpt) -> None:
    """Create the monthly partitions of the results ahead (FPVERIFY_RETENTION__MONTHS_AHEAD; PostgreSQL)."""
    import logging

    from fpverify.server.models import utcnow
    from fpverify.server.ops.partitions import ensure_months, partitioned

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db = _db(database_url)
    with db.session() as s:
        if not partitioned(s):
            typer.echo("verification_results is not partitioned here (SQLite): nothing to do")
            return
        made = ensure_months(s, utcnow(), db.settings.retention.months_ahead)
        s.commit()
    typer.echo(f"partitions created: {', '.join(map(str, made))}" if made else "every partition ahead exists")


@server_app.command("retention")
@database_command
def retention_cmd(dry_run: bool = typer.Option(False, "--dry-run", help="count what would go; change nothing"),
                  database_url: str = DbOpt) -> None:
    """Delete verification records older than FPVERIFY_RETENTION__RESULTS_MONTHS (audited)."""
    import logging

    from fpverify.server.ops import retention

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db = _db(database_url)
    with db.session() as s:
        report = retention.run(s, db.settings.retention.results_months, dry_run=dry_run)
    typer.echo(report.summary())


@server_app.command("cohort-backfill")
@database_command
def cohort_backfill_cmd(
        dry_run: bool = typer.Option(False, "--dry-run", help="compute and count; change nothing"),
        recompute: bool = typer.Option(False, "--recompute",
                                       help="every active template, not only those without statistics "
                                            "(after a matcher upgrade changed the score scale)"),
        limit: int = typer.Option(None, "--limit", min=1, help="examine at most N templates"),
        database_url: str = DbOpt) -> None:
    """Compute the impostor-cohort statistics of active templates without them (audited; stations
    get them through the template feed). Batches commit as they go: a rerun continues."""
    import logging

    from fpverify.server.ops import cohort_backfill

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        db = _db(database_url)
        with db.session() as s:
            report = cohort_backfill.run(s, db.settings.cohort_size, dry_run=dry_run, recompute=recompute,
                                         limit=limit)
    except cohort_backfill.BackfillError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(report.summary())


def bench_ingest(out: Path = typer.Option(..., "--out"), results: int = typer.Option(20000, help="distinct valid results"),
                 devices: int = typer.Option(50), duplicates: int = typer.Option(1000),
                 malformed: int = typer.Option(100), clients: int = typer.Option(5, help="publishing connections"),
                 mqtt_version: str = typer.Option("5"),
                 workers: int = typer.Option(1, min=1, help="ingest workers sharing the load"),
                 broker: str = typer.Option("mosquitto", help="mosquitto | rabbitmq (MQTT plugin + quorum queue)"),
                 repeat: int = typer.Option(3, min=1, help="runs per setup (median)")) -> None:
    """Sustained results/s and latency from simulated stations through the broker into a private
    PostgreSQL; Mosquitto with one worker is measured in the same run as the baseline."""
    from fpverify.bench.ingest import BROKERS, run_ingest_bench

    if broker not in BROKERS:
        typer.echo(f"error: --broker must be one of {', '.join(BROKERS)}", err=True)
        raise typer.Exit(2)
    res = run_ingest_bench(out, results, devices, duplicates, malformed, clients, mqtt_version, repeat=repeat,
                           workers=workers, broker=broker)
    typer.echo(f"{broker} x{workers}: {res['results_per_s']:.0f} results/s (baseline mosquitto x1 "
               f"{res['baseline']['results_per_s']:.0f}), latency {res['latency_ms_median']} ms; "
               f"sent {res['sent']}, stored {res['stored']}, lost {res['lost']}")
    if res["lost"]:
        raise typer.Exit(1)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    from fpverify.server.trust.cli import register_trust_commands

    register_trust_commands(server_app)
    app.add_typer(server_app, name="server")
    bench.command("ingest")(bench_ingest)
