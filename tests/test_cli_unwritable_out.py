"""An --out folder that cannot be made is one line and exit 2, before any work, for every command
that writes one (a bench that computed for an hour and then lost its results to a typo was the defect)."""

from __future__ import annotations

import subprocess
import sys

import pytest

ARGVS = {
    "synth": ["synth", "--fingers", "2", "--impressions", "2"],
    "bench speed": ["bench", "speed"],
    "bench search": ["bench", "search"],
    "bench desk": ["bench", "desk"],
    "bench calibrate": ["bench", "calibrate"],
    "bench accuracy": ["bench", "accuracy"],
}


@pytest.mark.parametrize("name", list(ARGVS))
def test_unwritable_out_is_one_clear_line(tmp_path, name):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "results"
    r = subprocess.run([sys.executable, "-m", "fpverify", *ARGVS[name], "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert lines, r.stderr[-2000:]
    # with the datasets present the folder is what fails; without them, their absence is said first
    assert str(blocker) in lines[0] or "dataset" in lines[0].lower() or "FPVERIFY_DATASETS" in lines[0], lines
    assert not out.exists()
