"""`fpverify server ...` commands and the Alembic migrations (same schema as the models)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from typer.testing import CliRunner

from fpverify.cli import app as cli_app
from fpverify.server.core.config import get_settings
from fpverify.server.core.security import token_digest
from fpverify.server.db import Database
from fpverify.server.models import Base, Device
from tests.server.helpers import make_settings


def test_migrations_match_models(any_url):
    db = Database(settings=make_settings(any_url))
    db.migrate()
    with db.engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
    assert diff == []
    db.dispose()


def test_cli_commands(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FPVERIFY_DATABASE_URL", url)
    monkeypatch.setenv("FPVERIFY_NEW_PASSWORD", "a long password")
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        assert runner.invoke(cli_app, ["server", "migrate"]).exit_code == 0
        r = runner.invoke(cli_app, ["server", "create-user", "--username", "root1", "--role", "sysadmin"])
        assert r.exit_code == 0 and "created" in r.output, r.output
        r = runner.invoke(cli_app, ["server", "create-user", "--username", "x1", "--role", "king"])
        assert r.exit_code == 2 and "role must be one of" in r.output
        r = runner.invoke(cli_app, ["server", "add-device", "--site", "h1", "--device-id", "desk-1"])
        assert r.exit_code == 0, r.output
        token = r.output.strip().splitlines()[-1]
        db = Database(url)
        with db.session() as s:
            assert s.get(Device, "desk-1").token_hash == token_digest(token)  # printed once, stored hashed
        r = runner.invoke(cli_app, ["server", "add-device", "--site", "h1", "--device-id", "desk-1"])
        assert r.exit_code == 2 and "exists" in r.output
        key = tmp_path / "k"
        assert runner.invoke(cli_app, ["server", "new-backup-key", str(key)]).exit_code == 0
        out = tmp_path / "b.bak"
        r = runner.invoke(cli_app, ["server", "backup", "--out", str(out), "--key-file", str(key)])
        assert r.exit_code == 0 and out.exists(), r.output
        monkeypatch.setenv("FPVERIFY_DATABASE_URL", f"sqlite:///{tmp_path / 'restored.db'}")
        get_settings.cache_clear()
        r = runner.invoke(cli_app, ["server", "restore", str(out), "--key-file", str(key)])
        assert r.exit_code == 0 and "restored" in r.output, r.output
        r = runner.invoke(cli_app, ["server", "restore", str(out), "--key-file", str(key)])
        assert r.exit_code == 2 and "not empty" in r.output
        assert runner.invoke(cli_app, ["server", "audit", "verify"]).exit_code == 0
        db.dispose()
    finally:
        get_settings.cache_clear()
