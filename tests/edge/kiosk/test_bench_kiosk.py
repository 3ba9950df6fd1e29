"""`fpverify bench kiosk` writes its results and report; without Chromium it measures through the
page's own endpoints. (The figure itself is the bench's, not this test's.)"""

from __future__ import annotations

import json

import pytest

from fpverify.edge.kiosk import bench


@pytest.mark.slow  # a bench run (many seconds)
def test_bench_without_a_browser_writes_results_and_report(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "CHROMIUM", str(tmp_path / "no-chromium"))
    res = bench.run_kiosk_bench(tmp_path / "out", runs=2)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved == res and res["runs"] == 2 and res["through"].startswith("page endpoints")
    assert res["outcomes"] == {"match": 2}
    assert res["min_s"] > res["uart_transfer_s"]  # the paced serial line cannot be beaten
    assert "card scan -> outcome" in (tmp_path / "out" / "report.md").read_text()
