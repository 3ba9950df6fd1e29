"""Every package folder is declared in pyproject.toml, so that a wheel (a station installs one) holds it.

The editable install of development finds undeclared subpackages through their parent, so only this
test notices a folder missing from the list."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_declared():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(cfg["packages"])
    found = set()
    for name, folder in cfg["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    found.add("fpverify.server.migrations")
    found.add("fpverify.server.migrations.versions")
    assert found <= declared, f"add to [tool.setuptools] packages: {sorted(found - declared)}"
    assert declared <= found, f"declared but not a package folder: {sorted(declared - found)}"
