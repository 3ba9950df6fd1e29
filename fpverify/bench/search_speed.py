"""Timing and memory half of `fpverify bench search` (see fpverify/bench/search.py).

The timed gallery: codes of real templates and of perturbed copies of them (random rigid moves,
jitter, dropped minutiae), repeated with about 3 % of their bits flipped up to N rows. Right for
time and bytes, not for recall (copies of a finger are its mates).
"""

from __future__ import annotations

import resource
import statistics
import time
import uuid
from pathlib import Path

import numpy as np

from fpverify.edge.presses import ENROLL_PRESSES


def _cpu(fn) -> float:
    t0 = time.thread_time()
    fn()
    return time.thread_time() - t0


def _rss() -> int:
    """Resident bytes of this process now."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()


def _fill(g, cb: list, n: int, rng) -> None:
    """N rows: the distinct codes, then repeats of them with about 3 % of their bits flipped."""
    from fpverify.matcher import codes

    src = np.stack([c for c, _ in cb])
    cnt = np.array([k for _, k in cb])
    p = codes.DEFAULT_CODES
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        idx = np.arange(s, e) % len(cb)
        c = src[idx]
        rep = np.arange(s, e) >= len(cb)
        m = rng.integers(0, 2**64, c.shape, dtype=np.uint64, endpoint=False)
        for _ in range(4):
            m &= rng.integers(0, 2**64, c.shape, dtype=np.uint64, endpoint=False)
        c[rep] ^= m[rep]
        g.extend([uuid.uuid4().hex for _ in range(e - s)], c, cnt[idx], np.arange(s, e) // 6, np.arange(s, e))
    assert len(g) == n and p.words == src.shape[1]


def speed(temps: list, n: int, shortlist: int, threads: int, distinct: int, probes: int) -> dict:
    from fpverify import matcher
    from fpverify.bench.speed import _variant
    from fpverify.matcher import codes, index

    rng = np.random.default_rng(7)
    base = list(temps)
    while len(base) < distinct:
        v = _variant(rng, temps[int(rng.integers(len(temps)))], temps[0].params)
        try:  # a moved minutia can round onto the image border, which from_bytes refuses
            base.append(matcher.Template.from_bytes(v.to_bytes()))
        except ValueError:
            continue
    blobs = [t.to_bytes() for t in base]
    # a restart without a snapshot: bytes -> template -> cylinders -> code, per template
    per_t = [_cpu(lambda b=b: codes.gallery_code(matcher.Template.from_bytes(b))) for b in blobs[:200]]
    cb = [codes.gallery_code(t) for t in base]
    rss0 = _rss()
    g = index.CodeGallery(capacity=n)
    _fill(g, cb, n, rng)
    rss1 = _rss()
    pr = [int(i) for i in rng.choice(len(temps), probes, replace=False)]
    g.first_stage(codes.probe_code(temps[pr[0]]))  # touch the pages once
    cpu = [_cpu(lambda c=codes.probe_code(temps[i]): g.first_stage(c, threads=1)) for i in pr]

    def fetch(keys):  # the registry reads these from its database; here the bytes of the source row
        return [(k, matcher.Template.from_bytes(blobs[g.row(k) % len(blobs)])) for k in keys]

    walls, walls_enrol, cpus = [], [], []
    for j, i in enumerate(pr):
        t0, c0 = time.perf_counter(), time.process_time()
        index.search([temps[i]], g, fetch, shortlist=shortlist, threads=threads)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)  # all threads: what the search costs, whatever else runs
        if j < 3:  # one enrollment's presses, searched together (timed 3 times)
            presses = [temps[int(k)] for k in rng.choice(len(temps), ENROLL_PRESSES, replace=False)]
            t0 = time.perf_counter()
            index.search(presses, g, fetch, shortlist=shortlist, threads=threads)
            walls_enrol.append(time.perf_counter() - t0)
    fl = matcher.Gallery((i, base[i % len(base)]) for i in range(min(n, 5000)))
    fl.packed()
    nb = len(fl)
    base_cpu = [_cpu(lambda t=t: fl.first_stage(t)) for t in temps[:5]]
    fl = None  # free the float gallery before the snapshot
    snap = Path(f"/tmp/fpverify-codegallery-{uuid.uuid4().hex}.npz")
    try:
        t0 = time.perf_counter()
        g.save(snap, {"version": 1})
        save_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        g2, _ = index.CodeGallery.load(snap)
        load_s = time.perf_counter() - t0
        if len(g2) != n:
            raise RuntimeError("snapshot lost rows")
        snap_mb = snap.stat().st_size / 2**20
        del g2
    finally:
        snap.unlink(missing_ok=True)
    return {
        "gallery_rows": n, "distinct_templates": len(base), "probes_timed": len(pr),
        "first_stage_per_s": n / statistics.median(cpu), "baseline_per_s": nb / statistics.median(base_cpu),
        "baseline_gallery": nb, "bytes_per_template_arrays": g.nbytes / n,
        "bytes_per_template": (rss1 - rss0) / n, "search_s_median": statistics.median(walls),
        "search_s_max": max(walls), "search_cpu_s_median": statistics.median(cpus), "enrollment_search_s_median": statistics.median(walls_enrol), "threads": threads,
        "shortlist": shortlist, "rebuild_ms_per_template": 1e3 * statistics.median(per_t),
        "rebuild_s_per_million_one_core": 1e6 * statistics.median(per_t), "snapshot_save_s": save_s,
        "snapshot_load_s": load_s, "snapshot_mb": snap_mb,
    }  # fmt: skip
