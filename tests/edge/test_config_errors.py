"""A station config naming a certificate or key file that is not there: `fpverify edge ...` says which
setting and which file, exit 2, before it touches the store or the network (issue 16)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fpverify.cli import app
from fpverify.edge.cache import Store, parse_key
from fpverify.edge.config import ConfigError, check_files, load_config
from tests.edge.helpers import write_config

runner = CliRunner()


def _config(tmp_path, section: str, name: str):
    """A station config whose [mqtt] and [registry] name certificate files that exist, except
    `section.name`, which names gone/missing.pem. Returns (config path, the missing file)."""
    folder = tmp_path / "st"
    folder.mkdir()
    names = {
        ("mqtt", "ca_file"): "ca.pem",
        ("mqtt", "cert_file"): "desk.crt",
        ("mqtt", "key_file"): "desk.key",
        ("registry", "ca_file"): "ca.pem",
    }
    for f in set(names.values()):
        (folder / f).write_text("-----BEGIN CERTIFICATE-----\n")
    names[(section, name)] = "gone/missing.pem"

    def block(sec: str) -> str:
        return "\n".join(f'{n} = "{f}"' for (s, n), f in names.items() if s == sec)

    path = write_config(folder)
    path.write_text(
        path.read_text() + f'\n[mqtt]\nhost = "127.0.0.1"\n{block("mqtt")}\n\n'
        f'[registry]\nurl = "https://registry.invalid"\n{block("registry")}\n'
    )
    return path, folder / "gone" / "missing.pem"


@pytest.mark.parametrize(
    "section, name",
    [("mqtt", "ca_file"), ("mqtt", "cert_file"), ("mqtt", "key_file"), ("registry", "ca_file")],
)
def test_status_names_the_missing_file_and_its_setting(tmp_path, section, name):
    path, missing = _config(tmp_path, section, name)
    cfg = load_config(path)  # the file itself is valid: the check is of the files it names
    Store.open(cfg.cache.path, parse_key(cfg.cache.key.read_bytes())).close()
    with pytest.raises(ConfigError, match=f"{section}\\.{name}: {missing}"):
        check_files(cfg)
    r = runner.invoke(app, ["edge", "status", "--config", str(path)])
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    line = r.stderr.strip()
    assert line.startswith("error: ") and len(line.splitlines()) == 1
    assert f"{section}.{name}" in line and str(missing) in line and "does not exist" in line, line


def test_status_passes_when_every_named_file_is_there(tmp_path):
    path, missing = _config(tmp_path, "mqtt", "ca_file")
    missing.parent.mkdir()
    missing.write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = load_config(path)
    Store.open(cfg.cache.path, parse_key(cfg.cache.key.read_bytes())).close()
    check_files(cfg)
    r = runner.invoke(app, ["edge", "status", "--config", str(path)])
    assert r.exit_code == 0, r.output


def test_a_folder_is_not_a_ca_file(tmp_path):
    path, missing = _config(tmp_path, "mqtt", "ca_file")
    missing.mkdir(parents=True)
    r = runner.invoke(app, ["edge", "status", "--config", str(path)])
    assert r.exit_code == 2 and "mqtt.ca_file" in r.stderr and "is a folder" in r.stderr, r.output


def test_wipe_does_not_need_the_certificates(tmp_path):
    path, _ = _config(tmp_path, "mqtt", "ca_file")
    cfg = load_config(path)
    Store.open(cfg.cache.path, parse_key(cfg.cache.key.read_bytes())).close()
    r = runner.invoke(app, ["edge", "wipe", "--config", str(path), "--yes"])
    assert r.exit_code == 0 and not cfg.cache.path.exists(), r.output


def test_unknown_operating_point_names_the_valid_ones(tmp_path):
    from fpverify.matcher import THRESHOLDS

    path = write_config(tmp_path / "st", extra='threshold = "fmr_1e-5x"')
    r = runner.invoke(app, ["edge", "status", "--config", str(path)])
    assert r.exit_code == 2 and "station.threshold" in r.stderr and "fmr_1e-5x" in r.stderr
    assert all(k in r.stderr for k in THRESHOLDS)
