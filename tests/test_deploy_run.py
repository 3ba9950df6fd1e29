"""The registry's units run as written: backup, restore drill, HTTPS service, a read-only install, clear errors."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from fpverify.server.core.config import Settings
from tests.deploy_helpers import (
    CFG,
    ENV_FILE,
    FPVERIFY,
    read_env_file,
    read_unit,
    unit_command,
)

# ---- the backup and the restore drill, run as the units run them -------------------------------------------


def _run_exec(unit: str, key: str, tmp: Path, env: dict, creds: Path) -> subprocess.CompletedProcess:
    (value,) = read_unit(CFG / unit)["Service"][key]
    return subprocess.run(
        unit_command(value, tmp, creds),
        env={**env, "CREDENTIALS_DIRECTORY": str(creds)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _second_supervisor_by_approval(pg_url: str) -> None:
    """docs/registry.md, section 3: after the console's two accounts, the next one is asked for by the
    sysadmin and approved by the supervisor, who receives its one-time password."""
    from fastapi.testclient import TestClient

    from fpverify.server.app import create_app

    app = create_app(Settings(database_url=pg_url, mqtt_enabled=False, national_id_key="bootstrap-test"))
    with TestClient(app) as c:
        tokens = {}
        for name in ("admin.zhang", "office.li"):
            r = c.post(
                "/api/v1/auth/login", json={"username": name, "password": f"{name} correct horse battery"}
            )
            assert r.status_code == 200, r.text
            tokens[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = c.post(
            "/api/v1/users",
            headers=tokens["admin.zhang"],
            json={"username": "office.wang", "role": "supervisor", "reason": "second approver"},
        )
        assert r.status_code == 202, r.text
        r = c.post(f"/api/v1/approvals/{r.json()['id']}/approve", headers=tokens["office.li"], json={})
        assert r.status_code == 200 and r.json()["one_time_password"], r.text


@pytest.mark.slow
def test_backup_timer_unit_and_restore_drill_work_as_written(pg_url, tmp_path):
    """The bootstrap of docs/registry.md (two accounts by the CLI), the backup unit's commands
    against PostgreSQL onto the 'off-site' folder, its pruning, then the drill unit's commands."""
    (tmp_path / "offsite").mkdir()
    (tmp_path / "private-tmp").mkdir()
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FPVERIFY_")}
    env |= {
        **read_env_file(ENV_FILE),
        "FPVERIFY_DATABASE_URL": pg_url,
        "FPVERIFY_PASSWORD_TIME_COST": "1",
        "FPVERIFY_PASSWORD_MEMORY_KIB": "1024",
    }
    cli = [FPVERIFY, "server"]
    assert subprocess.run([*cli, "migrate"], env=env, capture_output=True, timeout=300).returncode == 0
    for name, role in (("admin.zhang", "sysadmin"), ("office.li", "supervisor")):  # people type at the prompt
        r = subprocess.run(
            [*cli, "create-user", "--username", name, "--role", role],
            capture_output=True,
            env={**env, "FPVERIFY_NEW_PASSWORD": f"{name} correct horse battery"},
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
    _second_supervisor_by_approval(pg_url)
    subprocess.run([*cli, "new-backup-key", str(creds / "backup.key")], env=env, timeout=60, check=True)

    old = tmp_path / "offsite" / "registry-20200101T000000Z.fpvbak"
    old.write_bytes(b"an old backup")
    os.utime(old, (time.time() - 100 * 86400,) * 2)
    r = _run_exec("fpverify-registry-backup.service", "ExecStart", tmp_path, env, creds)
    assert r.returncode == 0, r.stderr
    made = sorted((tmp_path / "offsite").glob("registry-*.fpvbak"))
    assert len(made) == 2 and re.fullmatch(r"registry-\d{8}T\d{6}Z\.fpvbak", made[1].name), made
    assert (
        _run_exec("fpverify-registry-backup.service", "ExecStartPost", tmp_path, env, creds).returncode == 0
    )
    assert not old.exists() and made[1].exists()  # 90-day retention pruned only the old one

    r = _run_exec("fpverify-registry-restore-drill.service", "ExecStart", tmp_path, env, creds)
    assert r.returncode == 0, r.stderr
    assert f"drill: {made[1]}" in r.stdout and "audit chain intact" in r.stdout, r.stdout
    restored = subprocess.run(  # the drill's scratch copy holds both bootstrap accounts
        [
            sys.executable,
            "-c",
            "import sqlite3,sys; print(sorted(r[0] for r in sqlite3.connect(sys.argv[1])"
            ".execute('select username from users')))",
            str(tmp_path / "private-tmp" / "fpverify-drill.db"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert all(name in restored.stdout for name in ("admin.zhang", "office.li", "office.wang"))

    # A wrong key and a stale newest backup both fail the drill, with a message and no traceback.
    (tmp_path / "private-tmp" / "fpverify-drill.db").unlink()
    good_key = (creds / "backup.key").read_bytes()
    (creds / "backup.key").write_text("00" * 32 + "\n")
    r = _run_exec("fpverify-registry-restore-drill.service", "ExecStart", tmp_path, env, creds)
    assert r.returncode != 0 and "error:" in r.stderr and "Traceback" not in r.stderr, r.stderr
    (creds / "backup.key").write_bytes(good_key)
    (tmp_path / "private-tmp" / "fpverify-drill.db").unlink(missing_ok=True)
    os.utime(made[1], (time.time() - 3 * 86400,) * 2)
    r = _run_exec("fpverify-registry-restore-drill.service", "ExecStart", tmp_path, env, creds)
    assert r.returncode == 1 and "older than 2 days" in r.stderr, r.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_registry_imports_as_its_service_user_with_a_read_only_install():
    """The unit's NUMBA_CACHE_DIR: numba refuses to import cached kernels when it can write nowhere,
    which is the case for a service user under ProtectSystem=strict and a root-owned install."""
    (numba_dir,) = [
        v.split("=", 1)[1]
        for v in read_unit(CFG / "fpverify-registry.service")["Service"]["Environment"]
        if v.startswith("NUMBA_CACHE_DIR=")
    ]
    (cache_dir,) = read_unit(CFG / "fpverify-registry.service")["Service"]["CacheDirectory"]
    assert numba_dir.startswith(f"/var/cache/{cache_dir}/")
    cache = Path(tempfile.mkdtemp(prefix="fpv-numba-"))
    try:
        cache.chmod(cache.stat().st_mode | stat.S_IRWXO)
        env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "NUMBA_CACHE_DIR": str(cache / "numba")}
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c"]
        probe = subprocess.run([*as_nobody, "import fpverify.server"], env=env, cwd="/", capture_output=True)
        if probe.returncode:
            pytest.skip("this checkout or its Python cannot be read by an unprivileged user")
        code = "import fpverify.server.app, fpverify.matcher; print('ok')"
        r = subprocess.run([*as_nobody, code], env=env, cwd="/", capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]
    finally:
        shutil.rmtree(cache, ignore_errors=True)


@pytest.mark.slow
def test_backup_and_restore_say_what_is_wrong(tmp_path):
    """The off-site store not mounted, a backup file that is not there: an error line, not a traceback."""
    env = {**os.environ, "FPVERIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}
    key = tmp_path / "backup.key"
    subprocess.run([FPVERIFY, "server", "new-backup-key", str(key)], env=env, check=True, capture_output=True)
    for args, says in (
        (["backup", "--out", str(tmp_path / "not-mounted" / "b.fpvbak")], "cannot write"),
        (["restore", str(tmp_path / "missing.fpvbak"), "--no-migrate"], "does not exist"),
    ):
        r = subprocess.run(
            [FPVERIFY, "server", *args, "--key-file", str(key)],
            env={**env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


@pytest.mark.slow
def test_registry_unit_serves_https_with_the_example_settings(pg_url, tmp_path):
    """The unit's ExecStart with registry.env and the unit's own Environment= (keys as credentials)
    serves HTTPS with a registry-CA certificate, and stops cleanly on SIGTERM as systemd stops it."""
    import httpx

    from fpverify.server.db import Database
    from fpverify.server.trust.pki import CertificateAuthority, write_identity
    from fpverify.services import free_port

    ca = CertificateAuthority.create(tmp_path / "ca")
    key, cert = ca.issue_server("registry-api", ["127.0.0.1", "localhost"])
    crt_path, key_path = write_identity(tmp_path / "tls", "registry-api", key, cert)
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    key_path.rename(creds / "api-tls.key")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FPVERIFY_")}
    service = read_unit(CFG / "fpverify-registry.service")["Service"]
    env |= {k: v.replace("%d", str(creds)) for k, v in (e.split("=", 1) for e in service["Environment"])}
    env |= read_env_file(ENV_FILE)  # the file wins over Environment=, as in systemd
    env |= {
        "FPVERIFY_DATABASE_URL": pg_url,
        "FPVERIFY_API_HOST": "127.0.0.1",
        "FPVERIFY_API_PORT": str(port),
        "FPVERIFY_API_TLS_CERT": str(crt_path),
        "FPVERIFY_CA_DIR": str(tmp_path / "ca"),
        "FPVERIFY_MQTT_ENABLED": "false",
        "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
        "CREDENTIALS_DIRECTORY": str(creds),
    }  # here: no broker, this test's database, port and CA
    Database(pg_url).migrate()
    (start,) = service["ExecStart"]
    proc = subprocess.Popen(
        unit_command(start, tmp_path, creds),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        verify = ssl_context(ca.cert_path)
        deadline = time.monotonic() + 120
        while True:
            try:
                r = httpx.get(f"https://127.0.0.1:{port}/api/v1/health", verify=verify, timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-3000:]
                time.sleep(0.5)
        assert r.status_code == 200
        assert httpx.get(f"https://127.0.0.1:{port}/docs", verify=verify, timeout=5).status_code == 200
    finally:
        proc.terminate()  # systemd's stop: SIGTERM, then SIGKILL after TimeoutStopSec=30
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "killed"
    log = proc.stdout.read()
    # uvicorn finishes its shutdown, then dies of the SIGTERM it got: systemd counts that as clean.
    assert rc in (0, -signal.SIGTERM) and "Application shutdown complete" in log, (rc, log[-3000:])


def ssl_context(cafile: Path):
    import ssl

    return ssl.create_default_context(cafile=str(cafile))
