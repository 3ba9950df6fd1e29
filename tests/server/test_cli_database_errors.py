"""Every `fpverify server ...` command that opens the database says plainly when it cannot use it:
one line naming the database (never its password) and the reason, exit 2, no traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fpverify.cli import app as cli_app
from fpverify.server.core.config import get_settings
from fpverify.server.ops.backup import new_key_file

REFUSED = "postgresql+psycopg://fp:s3cret@127.0.0.1:1/registry"


def commands(tmp_path):
    """(argv without --database-url) of every command that opens the database."""
    key = tmp_path / "backup.key"
    if not key.exists():
        new_key_file(key)
    dump = tmp_path / "some.fpbak"
    dump.write_bytes(b"not read: the database fails first")
    return {
        "migrate": ["server", "migrate"],
        "create-user": ["server", "create-user", "--username", "wang.li", "--role", "enroller",
                        "--password", "Lo0ng-enough-passw0rd!"],
        "add-device": ["server", "add-device", "--site", "S01", "--device-id", "desk-1"],
        "audit verify": ["server", "audit", "verify"],
        "backup": ["server", "backup", "--out", str(tmp_path / "out.fpbak"), "--key-file", str(key)],
        "restore": ["server", "restore", str(dump), "--key-file", str(key)],
        "partitions": ["server", "partitions"],
        "retention": ["server", "retention", "--dry-run"],
        "cohort-backfill": ["server", "cohort-backfill", "--dry-run"],
        "provision-device": ["server", "provision-device", "--site", "S01", "--name", "desk-1",
                             "--ca-dir", str(tmp_path / "ca"), "--out", str(tmp_path / "bundles")],
        "run": ["server", "run", "--no-ingest"],
    }


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("FPVERIFY_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


@pytest.mark.parametrize("name", [
    "migrate", "create-user", "add-device", "audit verify", "backup", "restore", "partitions", "retention",
    "cohort-backfill", "provision-device", "run"])
def test_an_unreachable_database_is_one_clear_line(runner, tmp_path, monkeypatch, name):
    if name == "run":  # past the production checks (development secrets) to the database
        monkeypatch.setenv("FPVERIFY_MODE", "demo")
        get_settings.cache_clear()
    argv = commands(tmp_path)[name] + ["--database-url", REFUSED]
    r = runner.invoke(cli_app, argv)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert "error: database postgresql+psycopg://fp:***@127.0.0.1:1/registry" in r.output, r.output
    assert "s3cret" not in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out.fpbak").exists() and not (tmp_path / "bundles").exists()


def test_the_url_from_the_settings_is_named_too(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("FPVERIFY_DATABASE_URL", REFUSED)
    get_settings.cache_clear()
    r = runner.invoke(cli_app, ["server", "retention"])
    assert r.exit_code == 2 and "error: database postgresql+psycopg://fp:***@127.0.0.1:1/registry" in r.output


@pytest.mark.parametrize("name", ["audit verify", "retention", "add-device", "create-user"])
def test_a_database_never_migrated_is_a_clear_error(runner, tmp_path, name):
    url = f"sqlite:///{tmp_path / 'never-migrated.db'}"
    r = runner.invoke(cli_app, commands(tmp_path)[name] + ["--database-url", url])
    assert r.exit_code == 2 and "error: database sqlite:///" in r.output and "no such table" in r.output, r.output
    assert "Traceback" not in r.output


def test_unparsable_url_and_unknown_revision(runner, tmp_path):
    r = runner.invoke(cli_app, ["server", "migrate", "--database-url", "not a database url"])
    assert r.exit_code == 2 and "error: database (unparsable URL)" in r.output, r.output
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    r = runner.invoke(cli_app, ["server", "migrate", "--revision", "nonsense", "--database-url", url])
    assert r.exit_code == 2 and "error: database sqlite:///" in r.output and "nonsense" in r.output, r.output
    assert "Traceback" not in r.output
