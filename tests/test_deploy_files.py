"""What the hospital's IT installs (firmware_cfg/registry/, docs/registry.md, the README's install
line) is checked against the code it drives: the systemd units parse and name real CLI commands and
options, the example settings load into Settings, the settings table in docs/registry.md is the
Settings class (read at test time), and the backup and restore-drill commands work as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fpverify.server.core.config import Settings
from tests.deploy_helpers import (
    CFG,
    CREDENTIALS,
    DOC,
    ENV_FILE,
    FPVERIFY,
    INSTALLED_ENV,
    INSTALLED_FPVERIFY,
    OFFSITE,
    UNITS,
    default_text,
    read_env_file,
    read_unit,
    setting_fields,
)
from tests.helpers import ROOT


def test_units_pass_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is missing (apt-get install systemd); the key checks below still run")
    for unit in UNITS:
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED_FPVERIFY, FPVERIFY))
    r = subprocess.run(
        [tool, "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), r.stderr + r.stdout


def test_units_have_what_they_need():
    assert {u.name for u in UNITS} >= {
        "fpverify-registry.service",
        "fpverify-registry-backup.service",
        "fpverify-registry-backup.timer",
    }
    assert INSTALLED_ENV in ENV_FILE.read_text().splitlines()[0]
    for unit in UNITS:
        u = read_unit(unit)
        assert u["Unit"]["Description"], unit.name
        if unit.suffix == ".timer":
            assert u["Timer"]["OnCalendar"] and u["Install"]["WantedBy"] == ["timers.target"], unit.name
            (target,) = u["Timer"]["Unit"]
            assert (CFG / target).is_file(), f"{unit.name} starts {target}, which is not shipped"
            continue
        svc = u["Service"]
        assert svc["User"] == ["fpverify-registry"] and svc["EnvironmentFile"] == [INSTALLED_ENV], unit.name
        assert svc["ExecStart"], unit.name
        # Each credential is used: by a setting (%d/NAME) or by a command ($CREDENTIALS_DIRECTORY/NAME).
        text = " ".join(svc.get("Environment", []) + svc["ExecStart"])
        for cred in svc.get("LoadCredential", []):
            name = cred.split(":", 1)[0]
            assert f"%d/{name}" in text or f"$CREDENTIALS_DIRECTORY/{name}" in text, (unit.name, name)
    registry = read_unit(CFG / "fpverify-registry.service")
    assert registry["Install"]["WantedBy"] == ["multi-user.target"]
    assert registry["Service"]["ExecStart"] == [f"{INSTALLED_FPVERIFY} server run --no-migrate"]
    for unit in ("fpverify-registry-backup.service", "fpverify-registry-restore-drill.service"):
        assert read_unit(CFG / unit)["Unit"]["RequiresMountsFor"] == [OFFSITE]  # never a local fallback


def _fpverify_calls(unit: Path) -> list[list[str]]:
    """Each `fpverify ...` invocation in the unit's Exec*= lines, as words (options included)."""
    calls = []
    for key, values in read_unit(unit).get("Service", {}).items():
        if key.startswith("Exec"):
            for value in values:
                for m in re.finditer(re.escape(INSTALLED_FPVERIFY) + r"([^;'&|]*)", value):
                    calls.append(m[1].split())
    return calls


@pytest.mark.parametrize("unit", [u for u in UNITS if u.suffix == ".service"], ids=lambda u: u.name)
def test_unit_commands_are_real_cli_commands_and_options(unit):
    calls = _fpverify_calls(unit)
    assert calls, f"{unit.name} runs no fpverify command"
    for words in calls:
        command = [
            w for w in words[: next((i for i, w in enumerate(words) if w.startswith("-")), len(words))]
        ]
        r = subprocess.run(
            [FPVERIFY, *command, "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"},
        )
        assert r.returncode == 0, (unit.name, command, r.stderr)
        for option in (w.split("=")[0] for w in words if w.startswith("--")):
            assert option in r.stdout, f"{unit.name}: `fpverify {' '.join(command)}` has no {option}"


# ---- the example settings and the settings table ------------------------------------------------------------


def test_example_settings_load_into_settings(monkeypatch):
    env = read_env_file(ENV_FILE)
    known = setting_fields()
    unit_env = dict(
        v.split("=", 1) for v in read_unit(CFG / "fpverify-registry.service")["Service"]["Environment"]
    )
    unknown = [k for k in [*env, *unit_env] if k.startswith("FPVERIFY_") and k not in known]
    assert not unknown, f"not settings (the registry would ignore them): {unknown}"
    # The same file sourced by sh (the `fpv` helper of docs/registry.md) gives the same values.
    r = subprocess.run(
        ["sh", "-c", 'set -a; . "$1"; env', "sh", str(ENV_FILE)],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        check=True,
    )
    sourced = dict(line.split("=", 1) for line in r.stdout.splitlines() if line.startswith("FPVERIFY_"))
    assert sourced == env
    for name in list(os.environ):
        if name.startswith("FPVERIFY_"):
            monkeypatch.delenv(name)
    for name, value in {**unit_env, **env}.items():  # EnvironmentFile= wins over Environment=
        monkeypatch.setenv(name, value.replace("%d", CREDENTIALS))
    s = Settings()
    assert s.mode == "production" and s.database_url.startswith("postgresql+psycopg://")
    assert s.api_tls_key == Path(CREDENTIALS) / "api-tls.key" and s.api_tls_cert is not None
    assert s.mqtt_tls_key == Path(CREDENTIALS) / "mqtt-tls.key" and s.mqtt_port == 8883
    assert s.national_id_key.get_secret_value() == env["FPVERIFY_NATIONAL_ID_KEY"]
    from sqlalchemy.engine import make_url

    url = make_url(s.database_url)
    assert (url.drivername, url.username, url.host, url.database) == (
        "postgresql+psycopg",
        "fpverify-registry",
        None,
        "fpverify",
    )


def _doc_table() -> dict[str, tuple[str, str]]:
    text = DOC.read_text()
    body = text.split("<!-- settings-table", 1)[1].split("<!-- end settings-table -->", 1)[0]
    rows = {}
    for line in body.splitlines():
        m = re.fullmatch(r"\| `(FPVERIFY_[A-Z0-9_]+)` \| (?:`([^`]*)`)? ?\| (.*) \|", line.strip())
        if m:
            rows[m[1]] = (m[2] or "", m[3].strip())
    return rows


def test_settings_table_matches_the_settings_class():
    doc = _doc_table()
    fields = setting_fields()
    expected = {name: default_text(f) for name, f in fields.items()}

    def row(name):
        value = f"`{expected[name]}`" if expected[name] else ""
        return f"| `{name}` | {value} | <meaning> |"

    missing = [row(n) for n in expected if n not in doc]
    stale = [n for n in doc if n not in expected]
    wrong = [
        f"{n}: doc says {doc[n][0]!r}, Settings says {expected[n]!r}"
        for n in expected
        if n in doc and doc[n][0] != expected[n]
    ]
    unexplained = [n for n, (_, meaning) in doc.items() if len(meaning) < 10]
    assert not (missing or stale or wrong or unexplained), (
        "docs/registry.md, section Settings, is out of date:\n"
        + "".join(f"add: {r}\n" for r in missing)
        + "".join(f"remove: {n}\n" for n in stale)
        + "".join(f"fix: {w}\n" for w in wrong)
        + "".join(f"explain: {n}\n" for n in unexplained)
    )


# ---- the README's install line ----------------------------------------------------------------------------


def test_readme_install_line_names_every_package_ci_installs():
    ci = (ROOT / ".ci" / "run").read_text()
    ci_packages = set()
    for group in re.findall(r"need\+=\(([^)]*)\)", ci):  # need+=(pkg) when a binary is missing
        ci_packages |= set(group.split())
    for line in re.findall(r"apt-get install([^\n]*)", ci):  # and any package named outright
        ci_packages |= {w for w in line.split() if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", w)}
    assert {"mosquitto", "postgresql", "chromium"} <= ci_packages, ci_packages
    readme = (ROOT / "README.md").read_text()
    lines = re.findall(r"apt-get install ([a-z0-9 .+-]+)", readme)
    assert lines, "README.md names no apt-get install line"
    named = set(" ".join(lines).split())
    assert ci_packages <= named, f"README.md's install line lacks {sorted(ci_packages - named)}"
