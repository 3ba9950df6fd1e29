"""Registry settings refused when they are checked (issue 16): a certificate, key or CA folder that
is not there names its variable and the path; an unknown operating point names the valid ones; a
malformed value names its variable. `fpverify server check` and `server run` say so in one line,
exit 2, and start nothing."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fpverify.cli import app as cli_app
from fpverify.matcher import THRESHOLDS
from fpverify.server.core.config import ConfigError, Settings, get_settings, load_settings

runner = CliRunner()


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean FPVERIFY_* environment in development mode (no production secret needed)."""
    import os

    for name in list(os.environ):
        if name.startswith("FPVERIFY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FPVERIFY_MODE", "development")
    monkeypatch.setenv("FPVERIFY_DATABASE_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def _one_error_line(r) -> str:
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.mark.parametrize(
    "name", ["MQTT_TLS_CA", "MQTT_TLS_CERT", "MQTT_TLS_KEY", "API_TLS_CERT", "API_TLS_KEY"]
)
@pytest.mark.parametrize("command", ["check", "run"])
def test_a_missing_tls_file_names_the_setting_and_the_file(env, tmp_path, name, command):
    missing = tmp_path / "tls" / "missing.pem"
    env.setenv(f"FPVERIFY_{name}", str(missing))
    line = _one_error_line(runner.invoke(cli_app, ["server", command]))
    assert f"FPVERIFY_{name}" in line and str(missing) in line and "does not exist" in line, line
    assert not (tmp_path / "registry.db").exists()  # `run` stopped before the database


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_ca_folder_without_its_ca_names_the_setting(env, tmp_path, command):
    (tmp_path / "ca").mkdir()
    env.setenv("FPVERIFY_CA_DIR", str(tmp_path / "ca"))
    line = _one_error_line(runner.invoke(cli_app, ["server", command]))
    assert "FPVERIFY_CA_DIR" in line and str(tmp_path / "ca" / "ca.crt") in line and "pki init" in line, line


def test_a_folder_given_as_a_ca_file(env, tmp_path):
    env.setenv("FPVERIFY_MQTT_TLS_CA", str(tmp_path))
    line = _one_error_line(runner.invoke(cli_app, ["server", "check"]))
    assert "FPVERIFY_MQTT_TLS_CA" in line and "is a folder" in line


def test_every_missing_file_is_named_at_once(tmp_path):
    s = Settings(mqtt_tls_ca=tmp_path / "a.pem", api_tls_key=tmp_path / "k.pem")
    with pytest.raises(ConfigError) as e:
        s.check_files()
    assert "FPVERIFY_MQTT_TLS_CA" in str(e.value) and "FPVERIFY_API_TLS_KEY" in str(e.value)


def test_mqtt_files_do_not_count_without_ingest(env, tmp_path):
    env.setenv("FPVERIFY_MQTT_TLS_CA", str(tmp_path / "missing.pem"))
    env.setenv("FPVERIFY_MQTT_ENABLED", "false")
    r = runner.invoke(cli_app, ["server", "check"])
    assert r.exit_code == 0, r.output


def test_check_passes_when_the_files_are_there(env, tmp_path):
    from fpverify.server.trust.pki import CertificateAuthority

    CertificateAuthority.create(tmp_path / "ca")
    for f in ("ca.pem", "api.crt", "api.key"):
        (tmp_path / f).write_text("pem\n")
    env.setenv("FPVERIFY_MQTT_TLS_CA", str(tmp_path / "ca.pem"))
    env.setenv("FPVERIFY_API_TLS_CERT", str(tmp_path / "api.crt"))
    env.setenv("FPVERIFY_API_TLS_KEY", str(tmp_path / "api.key"))
    env.setenv("FPVERIFY_CA_DIR", str(tmp_path / "ca"))
    r = runner.invoke(cli_app, ["server", "check"])
    assert r.exit_code == 0 and r.stdout.startswith("settings OK"), r.output


@pytest.mark.parametrize("command", [["check"], ["run"], ["migrate"], ["audit", "verify"]])
def test_an_unknown_duplicate_operating_point_is_refused_when_the_settings_load(env, tmp_path, command):
    env.setenv("FPVERIFY_DUPLICATE_THRESHOLD", "fmr_1e-9")
    line = _one_error_line(runner.invoke(cli_app, ["server", *command]))
    assert "FPVERIFY_DUPLICATE_THRESHOLD" in line and "fmr_1e-9" in line, line
    assert all(k in line for k in THRESHOLDS), line
    assert not (tmp_path / "registry.db").exists()


def test_a_malformed_value_names_its_variable(env):
    env.setenv("FPVERIFY_DASHBOARD__POOR_WINDOW", "fifty")
    line = _one_error_line(runner.invoke(cli_app, ["server", "check"]))
    assert "FPVERIFY_DASHBOARD__POOR_WINDOW" in line, line


def test_the_poor_press_window_must_hold_its_minimum(env):
    env.setenv("FPVERIFY_DASHBOARD__POOR_WINDOW", "5")
    with pytest.raises(ConfigError, match="poor_min_checks"):
        load_settings()
    env.setenv("FPVERIFY_DASHBOARD__POOR_MIN_CHECKS", "5")
    ds = load_settings().dashboard
    assert (ds.poor_window, ds.poor_min_checks) == (5, 5)


def test_production_still_refuses_the_development_secret(env):
    env.setenv("FPVERIFY_MODE", "production")
    line = _one_error_line(runner.invoke(cli_app, ["server", "check"]))
    assert "FPVERIFY_NATIONAL_ID_KEY" in line


@pytest.mark.parametrize("url", ["amqp://u:p@broker/%2F?no_such_option=1", "http://broker:5672/"])
@pytest.mark.parametrize("command", ["check", "run"])
def test_a_bad_work_queue_url_is_named_before_anything_starts(env, tmp_path, url, command):
    env.setenv("FPVERIFY_INGEST_BROKER", "rabbitmq")
    env.setenv("FPVERIFY_INGEST_AMQP_URL", url)
    line = _one_error_line(runner.invoke(cli_app, ["server", command]))
    assert "FPVERIFY_INGEST_AMQP_URL" in line and "u:p" not in line, line  # never the password
    assert not (tmp_path / "registry.db").exists()
