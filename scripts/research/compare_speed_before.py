"""Research (issue 17 part 3, docs/matcher.md "Speed of the kernels"): the 1:1 compare of now against
the compare of commit BEFORE (default 14a4de4, before the vectorised relaxation; set BEFORE=<rev> to
compare with another revision's kernels), on the same templates in one process,
timed alternately pair by pair, each path first on every other pair: the first comparison of a pair
pays for bringing its templates into the cache (about 7 µs), so a fixed order favours the second
path. Run from the project root (it reads the old kernels from git):

    OPENBLAS_NUM_THREADS=1 [BEFORE=<rev>] .venv/bin/python scripts/research/compare_speed_before.py [sensor|native]
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from fpverify import matcher
from fpverify.matcher import matching

sys.path.insert(0, str(Path(__file__).parent))
from fair_timing import alternate, pairs_of  # noqa: E402

BEFORE = os.environ.get("BEFORE", "14a4de4")
src = subprocess.run(["git", "show", f"{BEFORE}:matcher/kernels.py"], capture_output=True, text=True, check=True).stdout
path = Path(tempfile.mkdtemp()) / "kernels_before.py"
path.write_text(src.replace('"cache": True', '"cache": False'))
spec = importlib.util.spec_from_file_location("kernels_before", path)
old_kernels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old_kernels)
WEIGHTED = "w_a: np.ndarray" in src


def before(a, b, fp, ip):
    """compare() as it was: the old kernels; 14a4de4 multiplied by a transposed view, later ones by desc_t."""
    la, lb = a.local, b.local
    ga, ba = a.valid_grid
    gb, bb = b.valid_grid
    right = lb.desc.T if BEFORE == "14a4de4" else b.desc_t
    if WEIGHTED:  # revisions since the quality-weighted pairing take each side's minutia weights
        return float(old_kernels.consolidate(la.desc @ right, la.xy, la.unit, la.weight, a.geometry, ga, ba,
                                             lb.xy, lb.unit, lb.weight, b.geometry, gb, bb, fp, ip))
    return float(old_kernels.consolidate(la.desc @ right, la.xy, la.unit, a.geometry, ga, ba, lb.xy, lb.unit,
                                         b.geometry, gb, bb, fp, ip))


for cond in sys.argv[1:] or ("sensor", "native"):
    pairs = pairs_of(cond)
    fp, ip = matching._packed(pairs[0][0].params)
    m, diff = alternate(pairs, {"old": lambda a, b: before(a, b, fp, ip), "new": matcher.compare})
    print(f"{cond}: {len(pairs)} pairs x2, median compare {m['old']:.1f} µs before -> {m['new']:.1f} µs now "
          f"(x{m['new'] / m['old']:.2f}); max |score difference| {diff:.1e}")
