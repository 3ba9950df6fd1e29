"""Plain helpers shared by test modules (fixtures stay in conftest.py files; no test module imports
another test module or a conftest)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository


def datasets_path() -> Path:
    """Where the FVC sets are: $FPVERIFY_DATASETS, else ../shared/datasets from the repository."""
    return Path(os.environ.get("FPVERIFY_DATASETS", ROOT.parent / "shared" / "datasets"))
