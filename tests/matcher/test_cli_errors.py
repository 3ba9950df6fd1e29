"""`fpverify matcher compare|debug` given a file that is not a readable image: one line naming the
file and why, exit code 2, never a traceback (issue 16)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fpverify.cli import app

runner = CliRunner()


def _ridges(path: Path) -> Path:
    """A greyscale image of concentric ridges (about 9 px apart at 500 dpi): a readable 'fingerprint'."""
    y, x = np.mgrid[0:320, 0:280]
    r = np.hypot(x - 140.0, y - 170.0)
    img = (127 + 100 * np.sin(2 * np.pi * r / 9.0)).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((300, 300), 128, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


BAD = {
    "text": lambda p: p.write_text("this is a card holder list, not a fingerprint\n"),
    "empty": lambda p: p.write_bytes(b""),
    "truncated png": lambda p: p.write_bytes(_png_bytes()[:60]),
    "missing": lambda p: None,
    "folder": lambda p: p.mkdir(),
}
REASON = {
    "text": "not an image",
    "empty": "not an image",
    "truncated png": "truncated",
    "missing": "no such file",
    "folder": "a folder",
}


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize("order", ["first", "second"])
def test_compare_refuses_a_file_that_is_not_an_image(tmp_path, kind, order):
    good = _ridges(tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    BAD[kind](bad)
    args = [str(bad), str(good)] if order == "first" else [str(good), str(bad)]
    r = runner.invoke(app, ["matcher", "compare", *args])
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read ") and str(bad) in lines[0], r.stderr
    assert REASON[kind] in lines[0], lines[0]


@pytest.mark.parametrize("kind", ["text", "truncated png", "missing"])
def test_debug_refuses_a_file_that_is_not_an_image_and_writes_nothing(tmp_path, kind):
    bad = tmp_path / "bad.png"
    BAD[kind](bad)
    out = tmp_path / "stages"
    r = runner.invoke(app, ["matcher", "debug", str(bad), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().startswith("error: cannot read ") and REASON[kind] in r.stderr
    assert not out.exists()


def test_compare_of_two_readable_images_still_scores(tmp_path):
    good = _ridges(tmp_path / "good.png")
    r = runner.invoke(app, ["matcher", "compare", str(good), str(good)])
    assert r.exit_code == 0 and r.stdout.startswith("score "), r.output
