"""Does the ridge-flow field agree where the minutiae align? Score fusion research (issue 17 part 2).

The matcher's score uses minutiae only. On the sensor's 256x288 window two presses share little
area and few minutiae, so the score has little to go on; the orientation field of the shared area is
a second, independent witness. For every comparison of the all-pairs protocol this script takes the
matcher's own final alignment (the same kernels, returning the transform), maps one press's
orientation field (8 px blocks) onto the other's, and records the mean cos(2 * difference) over the
shared blocks and their count. Fusions of the score with that agreement are then fitted on two FVC
years and scored on the third (held out), per condition.

    .venv/bin/python scripts/research/orientation_fusion.py --out DIR [--cache C]
        [--model 2000=h2000-int8.onnx --model 2004=h2004-int8.onnx]   # FVC2002: the shipped network

Features cache: C/<set>-<condition>-<model tag>.npz.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from numba import njit

from fpverify.bench import datasets, metrics
from fpverify.matcher import kernels
from fpverify.matcher.detectors import FusedDetector
from fpverify.matcher.features import extract_features
from fpverify.matcher.matching import _packed
from fpverify.matcher.params import ExtractionParams
from fpverify.matcher.template import Template

YEARS = ("2000", "2002", "2004")
GAMMAS = (1.0, 2.0, 3.0)  # quality exponents of the weighted pairing (q_one, q_two, q_three)
LSS_MODE = 0  # --lss-mode (see _align)
SOFT = (5.0, 6.0, 8.0)  # residual sigmas (px) of the soft pairing columns (soft5, soft6, soft8)
SOFT_ANGLE = 0.0  # --soft-angle: also weight by the direction residual (radians sigma; 0: not)


@njit(cache=True)
def _mixed(lss, pr, mix, power):
    """The final score from the LSS-R score and a pairing score, as `kernels.consolidate` mixes them."""
    return (lss**mix * pr ** (1.0 - mix)) ** power if lss > 0.0 and pr > 0.0 else 0.0


@njit(cache=True)
def _align(sim, xy_a, ua, geo_a, grid_a, block_a, xy_b, ub, geo_b, grid_b, block_b, fp, ip, q_a, q_b, lss_mode, soft_angle):
    """The matcher's steps with every minutia counted 1, returning (score, c, s, tx, ty, matched), then
    the score with each minutia weighted by its quality ** GAMMAS in the pairing counts (the kernel's
    own pairing), then the soft columns (quality², residual sigmas SOFT, and with `soft_angle` > 0 the
    direction residual too). With `lss_mode` 1 the LSS-R mean in the weighted columns is weighted by
    sqrt(q_a q_b) of each pair, with 2 each relaxed weight is multiplied by it (0: the plain mean)."""
    tol_d, cos_tol_a, mix, power = fp[4], fp[5], fp[6], fp[9]
    min_overlap, refine = ip[4], ip[5]
    out = np.zeros(9 + len(SOFT))
    pa, pb, wt, lss = kernels.anchors(sim, ua, ub, geo_a, geo_b, fp, ip)
    if pa.shape[0] == 0:
        return out
    matched, c, s, tx, ty, ma, mb = kernels.align(xy_a, ua, xy_b, ub, pa, pb, wt, tol_d, cos_tol_a, refine)
    out[1], out[2], out[3], out[4], out[5] = c, s, tx, ty, matched
    if matched == 0:
        return out

    def pairing(w_a, w_b):  # the kernel's weighted pairing, no residual weight
        return kernels.pairing(
            xy_a, ua, w_a, xy_b, ub, w_b, pa, pb, wt, grid_a, block_a, grid_b, block_b, tol_d, cos_tol_a,
            min_overlap, refine, 0.0,
        )  # fmt: skip

    out[0] = _mixed(lss, pairing(np.ones(xy_a.shape[0]), np.ones(xy_b.shape[0])), mix, power)
    if lss_mode > 0:
        sq = np.empty(pa.shape[0])
        for k in range(pa.shape[0]):
            sq[k] = math.sqrt(q_a[pa[k]] * q_b[pb[k]])
        if lss_mode == 1:
            lss = (wt * sq).sum() / max(sq.sum(), 1e-9)
        else:
            lss = (wt * sq).mean()
    for g, gamma in enumerate(GAMMAS):
        out[6 + g] = _mixed(lss, pairing(q_a**gamma, q_b**gamma), mix, power)
    # soft pairing on the q^2 weights: a matched pair also counts exp(-residual^2 / 2 sigma^2)
    # (written out here for the direction residual, which the kernel does not have)
    wa = q_a**2.0
    wb = q_b**2.0
    sa, sb = kernels.common_area(xy_a, wa, grid_a, block_a, xy_b, wb, grid_b, block_b, c, s, tx, ty)
    den = max(sa, min_overlap * max(wa.mean(), 1e-6)) * max(sb, min_overlap * max(wb.mean(), 1e-6))
    for g in range(len(SOFT)):
        m = 0.0
        for k in range(matched):
            i, j = ma[k], mb[k]
            dx = xy_a[i, 0] * c - xy_a[i, 1] * s + tx - xy_b[j, 0]
            dy = xy_a[i, 0] * s + xy_a[i, 1] * c + ty - xy_b[j, 1]
            e = -(dx * dx + dy * dy) / (2.0 * SOFT[g] ** 2)
            if soft_angle > 0.0:  # and the direction residual, exp(-da^2 / 2 sigma_a^2)
                ux = ua[i, 0] * c - ua[i, 1] * s
                uy = ua[i, 0] * s + ua[i, 1] * c
                da = math.atan2(ux * ub[j, 1] - uy * ub[j, 0], ux * ub[j, 0] + uy * ub[j, 1])
                e -= da * da / (2.0 * soft_angle**2)
            m += math.sqrt(wa[i] * wb[j]) * math.exp(e)
        out[9 + g] = _mixed(lss, m * m / den, mix, power)
    return out


@njit(cache=True)
def _flow_agreement(or_a, or_b, block, c, s, tx, ty, sign):
    """Mean cos(2 * (angle_b - mapped angle_a)) over b's finger blocks whose centre falls on a's
    finger once mapped into a's frame, and how many such blocks."""
    rot = sign * math.atan2(s, c)
    ha, wa = or_a.shape
    hb, wb = or_b.shape
    total = 0.0
    n = 0
    for i in range(hb):
        for j in range(wb):
            tb = or_b[i, j]
            if math.isnan(tb):
                continue
            # the matcher's frame is (x, -y): ISO angles are counter-clockwise there
            x, y = (j + 0.5) * block - tx, -(i + 0.5) * block - ty
            xa, ya = x * c + y * s, -x * s + y * c
            ja, ia = int(math.floor(xa / block)), int(math.floor(-ya / block))
            if ia < 0 or ja < 0 or ia >= ha or ja >= wa:
                continue
            ta = or_a[ia, ja]
            if math.isnan(ta):
                continue
            total += math.cos(2.0 * (tb - ta - rot))
            n += 1
    return (total / n if n else 0.0), n


def features_of(root: Path, name: str, condition: str, extraction: ExtractionParams, cache: Path, tag: str):
    """(keys, templates, orientation fields) of a set, cached as npz."""
    f = cache / f"{name}-{condition}-{tag}.npz"
    if f.exists():
        z = np.load(f, allow_pickle=True)
        keys = [tuple(k) for k in z["keys"]]
        temps = [Template.from_bytes(bytes(b)) if len(b) else None for b in z["templates"]]
        return keys, temps, list(z["orient"])
    images, dpi = datasets.load_condition(root, name, condition)
    keys, temps, orient = [], [], []
    for key, img in images.items():
        try:
            ft = extract_features(img, dpi=dpi, params=extraction)
            t = Template(ft.minutiae, ft.shape, mask=ft.mask, mask_block=ft.mask_block, dpi=dpi)
            o = ft.orientation
        except ValueError:
            t, o = None, np.zeros((1, 1), np.float32) * np.nan
        keys.append(key)
        temps.append(t)
        orient.append(o)
    cache.mkdir(parents=True, exist_ok=True)
    blobs = np.empty(len(temps), object)
    blobs[:] = [np.frombuffer(t.to_bytes(), np.uint8) if t is not None else np.zeros(0, np.uint8) for t in temps]
    ors = np.empty(len(orient), object)
    ors[:] = orient
    np.savez(f, keys=np.array(keys), templates=blobs, orient=ors)
    return keys, temps, orient


def comparisons(keys, temps, orient) -> dict[str, np.ndarray]:
    """Every pair of the all-pairs protocol: genuine flag, score, matched, flow agreement, shared blocks."""
    rows = []
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            ta, tb = temps[a], temps[b]
            gen = keys[a][0] == keys[b][0]
            if ta is None or tb is None or ta.local.count < 2 or tb.local.count < 2:
                rows.append((gen, 0.0, 0, 0.0, 0, 0.0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
                continue
            fp, ip = _packed(ta.params)
            la, lb = ta.local, tb.local
            ga, ba = ta.valid_grid
            gb, bb = tb.valid_grid
            qa = ta.minutiae[la.index, 3].astype(np.float64)
            qb = tb.minutiae[lb.index, 3].astype(np.float64)
            sim = la.desc @ tb.desc_t
            r = _align(
                sim, la.xy, la.unit, ta.geometry, ga, ba, lb.xy, lb.unit, tb.geometry, gb, bb, fp, ip, qa, qb, LSS_MODE, SOFT_ANGLE
            )
            if r[5] == 0:
                rows.append((gen, r[0], 0, 0.0, 0, 0.0, 0, *r[6:]))
                continue
            ag_p, n_p = _flow_agreement(orient[a], orient[b], ta.mask_block, r[1], r[2], r[3], r[4], 1.0)
            ag_m, n_m = _flow_agreement(orient[a], orient[b], ta.mask_block, r[1], r[2], r[3], r[4], -1.0)
            rows.append((gen, r[0], int(r[5]), ag_p, n_p, ag_m, n_m, *r[6:]))
    arr = np.array(rows, np.float64)
    return {
        "genuine": arr[:, 0].astype(bool), "score": arr[:, 1], "matched": arr[:, 2],
        "agree_plus": arr[:, 3], "blocks_plus": arr[:, 4], "agree_minus": arr[:, 5], "blocks_minus": arr[:, 6],
        "q_one": arr[:, 7], "q_two": arr[:, 8], "q_three": arr[:, 9],
        **{f"soft{int(sigma)}": arr[:, 10 + g] for g, sigma in enumerate(SOFT)},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/fpverify-orientation"))
    ap.add_argument("--model", action="append", default=[], help="YEAR=path of the network that held YEAR out")
    ap.add_argument("--conditions", default="sensor,native")
    ap.add_argument("--lss-mode", type=int, default=0, help="1, 2: quality-weighted LSS-R in the q columns")
    ap.add_argument("--soft-angle", type=float, default=0.0, help="direction sigma (rad) of the soft columns")
    args = ap.parse_args()
    global LSS_MODE, SOFT_ANGLE
    LSS_MODE = args.lss_mode
    SOFT_ANGLE = args.soft_angle
    root = datasets.default_root()
    models = dict(m.split("=", 1) for m in args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    for condition in args.conditions.split(","):
        for name in datasets.FVC_SETS:
            year = name[3:7]
            model = models.get(year, "")
            tag = Path(model).stem if model else "shipped"
            extraction = ExtractionParams(detector=FusedDetector(model=model)) if model else ExtractionParams()
            out = args.out / f"{name}-{condition}.npz"
            if out.exists():
                continue
            keys, temps, orient = features_of(root, name, condition, extraction, args.cache, tag)
            rows = comparisons(keys, temps, orient)
            np.savez(out, **rows)
            g = rows["genuine"]
            eer = metrics.rates(rows["score"][g], rows["score"][~g])["EER"]
            print(
                f"{name} {condition} {tag}: EER {100 * eer:.2f} %  flow agreement (+/-) genuine "
                f"{rows['agree_plus'][g].mean():.3f}/{rows['agree_minus'][g].mean():.3f} impostor "
                f"{rows['agree_plus'][~g].mean():.3f}/{rows['agree_minus'][~g].mean():.3f}",
                flush=True,
            )
    (args.out / "done.json").write_text(json.dumps({"models": models}))


if __name__ == "__main__":
    main()
