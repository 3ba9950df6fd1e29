"""What the deployment tests share: the registry's unit files, its example settings, the docs table."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from pydantic import BaseModel, SecretStr

from fpverify.server.core.config import Settings
from tests.helpers import ROOT

CFG = ROOT / "firmware_cfg" / "registry"
UNITS = sorted([*CFG.glob("*.service"), *CFG.glob("*.timer")])
ENV_FILE = CFG / "registry.env"
INSTALLED_ENV = "/etc/fpverify-registry/registry.env"
INSTALLED_FPVERIFY = "/opt/fpverify/.venv/bin/fpverify"
FPVERIFY = str(Path(sys.executable).parent / "fpverify")  # this environment's console script
OFFSITE = "/srv/fpverify-offsite"
CREDENTIALS = "/run/credentials/fpverify-registry.service"  # what systemd puts in %d
DOC = ROOT / "docs" / "registry.md"


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values]}} of a unit file (keys may repeat; no line continuations used)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"{path.name}: keep each setting on one line"
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"{path.name}: not KEY=value: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines as systemd's EnvironmentFile= reads them (kept to the plain form)."""
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)", line)
        assert m, f"{path.name}: write NAME=value, no quotes or spaces: {line!r}"
        env[m[1]] = m[2]
    return env


def setting_fields(cls=Settings, prefix: str = "FPVERIFY_") -> dict[str, object]:
    """{environment variable: pydantic field} of every setting, nested groups included (NAME__FIELD)."""
    out = {}
    for name, field in cls.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= setting_fields(ann, f"{prefix}{name.upper()}__")
        else:
            out[prefix + name.upper()] = field
    return out


def default_text(field) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "strftime"):
        return value.strftime("%H:%M")
    return str(value)


def unit_command(value: str, tmp: Path, creds: Path) -> list[str]:
    """An Exec*= line as the process systemd would start, with the installed paths moved under tmp."""
    value = re.sub(r"%(.)", lambda m: {"%": "%", "d": str(creds)}[m[1]], value)  # one pass, as systemd does
    value = value.replace(INSTALLED_FPVERIFY, FPVERIFY).replace(OFFSITE, str(tmp / "offsite"))
    value = value.replace("sqlite:////tmp/", f"sqlite:///{tmp}/private-tmp/")  # PrivateTmp=yes
    return shlex.split(value)


# ---- the unit files ---------------------------------------------------------------------------------------
