"""Research (issue 17, docs/matcher.md "Levers"): desk decisions from the all-pairs score matrix of
desk_allpairs.py, each lever with thresholds fitted leaving one FVC year out. Research code, kept so
the lever table can be reproduced; the shipped rule is matcher/decision.py and `fpverify bench desk`.

    python scripts/research/desk_levers.py WORKDIR/S_sensor.npz '[{"lever": "raw"}, ...]' OUT.json
"""
import json
import os
import sys

import numpy as np

from fpverify.bench import datasets
from fpverify.matcher import decision

POINTS = ("fmr_1e-2", "fmr_1e-3", "fmr_1e-4")
K = int(os.environ.get("K", 3)); PFROM = int(os.environ.get("PFROM", K + 1))
d = np.load(sys.argv[1])
S = d["S"].astype(np.float64); SET = d["set"]; FIN = d["finger"]; PR = d["press"]; OK = d["ok"]
YEAR = np.array([s[3:7] for s in SET])
ids = {}
ID = np.array([ids.setdefault(datasets.identity(str(s), int(f)), len(ids)) for s, f in zip(SET, FIN, strict=False)])
YEARS = ("2000", "2002", "2004")
M = len(S)

# cards: (set, finger) -> enrolled indices (press <= K, ok)
card_keys = list(dict.fromkeys(zip(SET.tolist(), FIN.tolist(), strict=False)))
cards = [np.flatnonzero((SET == s) & (FIN == f) & (PR <= K) & OK) for s, f in card_keys]
card_set = np.array([s for s, _ in card_keys]); card_year = np.array([s[3:7] for s, _ in card_keys])
card_id = np.array([ID[(SET == s) & (FIN == f)][0] for s, f in card_keys])
probes = np.flatnonzero(PR >= PFROM)
nxt = np.array([p + 1 if (p + 1 < M and SET[p + 1] == SET[p] and FIN[p + 1] == FIN[p]) else -1 for p in probes])
nxt_pos = np.array([np.searchsorted(probes, q) if q >= 0 else -1 for q in nxt])
probe_card = np.array([card_keys.index((SET[p], FIN[p])) for p in probes])

SIZE = [0]; SHRINK = [0.0]; TF = [1e-2]
def cohort_rows(year, held, first_only):
    m = OK & (YEAR != year) & (YEAR != held)
    if first_only:
        m &= PR == 1
    r = np.flatnonzero(m)
    if SIZE[0]:
        r = np.sort(np.random.default_rng(int(year) + 7).choice(r, min(SIZE[0], len(r)), replace=False))
    return r

def znorm_matrix(held, first_only, kind):
    """S normalised per column (template) by its cohort's scores, cohort from years not the template's nor held."""
    Z = S.copy()
    for y in YEARS:
        cols = np.flatnonzero(YEAR == y)
        rows = cohort_rows(y, held, first_only)
        C = S[np.ix_(rows, cols)]
        if kind == "z":
            mu, sd = C.mean(0), C.std(0)
            sd = (1 - SHRINK[0]) * sd + SHRINK[0] * np.median(sd)
        elif kind == "mu":
            mu, sd = C.mean(0), np.full(len(cols), 0.02)
        elif kind == "med":  # robust: median and MAD
            mu = np.median(C, 0); sd = 1.4826 * np.median(np.abs(C - mu), 0)
        elif kind in ("t", "zt"):
            mu, sd = np.zeros(len(cols)), np.ones(len(cols))
        if kind in ("z", "mu", "med", "zt"):
            Z[:, cols] = (S[:, cols] - mu) / np.maximum(sd, 1e-6)
    if kind in ("t", "zt"):  # probe side: the probe against the cohort (templates)
        Z2 = Z.copy()
        for y in YEARS:
            rws = np.flatnonzero(YEAR == y)
            cc = cohort_rows(y, held, first_only)
            C = Z[np.ix_(rws, cc)]
            mu, sd = C.mean(1), C.std(1)
            Z2[rws, :] = (Z[rws, :] - mu[:, None]) / np.maximum(sd, 1e-6)[:, None]
        Z = Z2
    Z[:, ~OK] = -1e9
    Z[~OK, :] = -1e9
    return Z

def fuse(block, how):
    if how == "max":
        return block.max(1)
    if how == "top2":
        b = np.sort(block, 1)
        return b[:, -2:].mean(1) if b.shape[1] >= 2 else b[:, -1]

def desk_matrix(Z, how):
    """(probes, cards) card score."""
    B = np.full((len(probes), len(cards)), -1e9)
    for c, idx in enumerate(cards):
        if len(idx):
            B[:, c] = fuse(Z[np.ix_(probes, idx)], how)
    return B

def retry_matrix(Z):
    """(probes, cards): max over the card's templates of the mean of this press and the next one's score."""
    R = np.full((len(probes), len(cards)), -1e9)
    ok = nxt_pos >= 0
    for c, idx in enumerate(cards):
        if len(idx):
            a = Z[np.ix_(probes[ok], idx)]; b = Z[np.ix_(probes[nxt_pos[ok]], idx)]
            R[ok, c] = ((a + b) / 2).max(1)
    return R

def same_set_pool(Z, years, how="single"):
    out = []
    for s in dict.fromkeys(SET.tolist()):
        if s[3:7] not in years:
            continue
        i = np.flatnonzero((SET == s) & OK)
        diff = ID[i][:, None] != ID[i][None]
        if how == "single":
            out.append(Z[np.ix_(i, i)][diff])
        else:  # mean of a press and the next one's score against one template
            j = np.array([x + 1 if x + 1 < M and SET[x + 1] == s and FIN[x + 1] == FIN[x] and OK[x + 1] else -1 for x in i])
            keep = j >= 0
            a = Z[np.ix_(i[keep], i)]; b = Z[np.ix_(j[keep], i)]
            dd = ID[i[keep]][:, None] != ID[i][None]
            out.append(((a + b) / 2)[dd])
    return out

def evaluate(B, thr, R=None, rthr=None, clean=False):
    """thr: (cards, point) thresholds. Returns pooled and per-set rows."""
    own = B[np.arange(len(probes)), probe_card]
    probe_ok = OK[probes]
    imp = probe_ok[:, None] & (ID[probes][:, None] != card_id[None])
    if clean:
        imp &= YEAR[probes][:, None] == card_year[None]
    same = imp & (SET[probes][:, None] == card_set[None])
    res = {}
    for k, p in enumerate(POINTS):
        t = thr[:, k]
        acc = B >= t[None]
        g_acc = probe_ok & (own >= t[probe_card])
        rej = ~g_acc
        pairs = nxt_pos >= 0
        rej[pairs] & rej[nxt_pos[pairs]]
        row = {"pooled": {}, "sets": {}}
        def gen(mask_probe):
            pm = pairs & mask_probe
            b = rej[pm] & rej[nxt_pos[pm]]
            out = {"FNMR": rej[mask_probe].mean(), "after_retry": b.mean(), "genuine": int(mask_probe.sum()), "pairs": int(pm.sum())}
            if R is not None:
                ownr = R[np.arange(len(probes)), probe_card]
                fr = ownr < rthr[probe_card, k]
                out["after_fused_retry"] = (rej[pm] & fr[pm]).mean()
            return out
        allp = np.ones(len(probes), bool)
        row["pooled"] = gen(allp)
        row["pooled"].update(imp=int(imp.sum()), fa=int((acc & imp).sum()), same=int(same.sum()), fa_same=int((acc & same).sum()))
        if R is not None:
            rt = R >= rthr[:, k][None]
            rimp = imp & (nxt_pos >= 0)[:, None]
            row["pooled"].update(rimp=int(rimp.sum()), rfa=int((rt & rimp).sum()))
        for s in dict.fromkeys(SET.tolist()):
            pm = SET[probes] == s
            r = gen(pm)
            r.update(same=int((same & pm[:, None]).sum()), fa_same=int((acc & same & pm[:, None]).sum()))
            row["sets"][s] = r
        res[p] = row
    return res

def card_thresholds(fits, n_of_card):
    """fits: year -> (THRESHOLDS, scale); per card year."""
    T = np.zeros((len(cards), len(POINTS)))
    for c in range(len(cards)):
        t, sc = fits[card_year[c]]
        for k, p in enumerate(POINTS):
            T[c, k] = decision.threshold_for(t[p], sc, max(1, n_of_card[c]))
    return T

def run(lever, norm=None, first_only=True, how="max", retry=False, protocol="loyo", size=0, shrink=0.0, tail_from=1e-2):
    SIZE[0] = size; SHRINK[0] = shrink; TF[0] = tail_from
    n_of_card = np.array([len(c) for c in cards])
    fits, rfits = {}, {}
    if protocol == "loyo":
        B = np.zeros((len(probes), len(cards))); R = np.zeros_like(B) if retry else None
        for h in YEARS:
            Z = S if norm is None else znorm_matrix(h, first_only, norm)
            train = [y for y in YEARS if y != h]
            fits[h] = decision.fit(same_set_pool(Z, train), POINTS, TF[0])
            if retry:
                rfits[h] = decision.fit(same_set_pool(Z, train, "pair"), POINTS)
            cols = card_year == h
            Bh = desk_matrix(Z, how)
            B[:, cols] = Bh[:, cols]
            if retry:
                R[:, cols] = retry_matrix(Z)[:, cols]
    else:  # fit on all years (as shipped), cohort from the other two years
        Z = S if norm is None else znorm_matrix("none", first_only, norm)
        f = decision.fit(same_set_pool(Z, YEARS), POINTS)
        fits = {y: f for y in YEARS}
        if retry:
            rf = decision.fit(same_set_pool(Z, YEARS, "pair"), POINTS); rfits = {y: rf for y in YEARS}
        B = desk_matrix(Z, how); R = retry_matrix(Z) if retry else None
    T = card_thresholds(fits, n_of_card)
    RT = card_thresholds(rfits, n_of_card) if retry else None
    out = {"lever": lever, "protocol": protocol, "fits": {y: {"THRESHOLDS": f[0], "TAIL_SCALE": f[1]} for y, f in fits.items()},
           "all": evaluate(B, T, R, RT), "clean": evaluate(B, T, R, RT, clean=True)}
    if retry:
        out["retry_fits"] = {y: {"THRESHOLDS": f[0], "TAIL_SCALE": f[1]} for y, f in rfits.items()}
    return out

def show(o):
    print(f"== {o['lever']} ({o['protocol']})", {y: (round(f["THRESHOLDS"]["fmr_1e-4"], 3), round(f["TAIL_SCALE"], 4)) for y, f in o["fits"].items()})
    for p in POINTS:
        a = o["all"][p]["pooled"]; c = o["clean"][p]["pooled"]
        extra = f" fused-retry {100*a['after_fused_retry']:.1f}% rFA {a['rfa']}/{a['rimp']}" if "after_fused_retry" in a else ""
        print(f"  {p}: FNMR {100*a['FNMR']:.1f} retry {100*a['after_retry']:.1f}  FA all {a['fa']}/{a['imp']} same {a['fa_same']}/{a['same']} within-year {c['fa']}/{c['imp']}{extra}")

if __name__ == "__main__":
    results = []
    for spec in json.loads(sys.argv[2]):
        o = run(**spec)
        show(o)
        results.append(o)
    json.dump(results, open(sys.argv[3], "w"), default=float, indent=1)
