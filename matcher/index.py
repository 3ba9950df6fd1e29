"""1:N search at scale: compact codes in memory, a compiled first stage, re-ranking by `compare`.

`CodeGallery` holds only what the first stage needs: each template's code (`codes.gallery_code`,
512 bytes by default), its cylinder count, a group number (e.g. the card holder; a search can leave
one group out) and a 64-bit digest of the template bytes (byte-identical uploads). Templates
themselves stay where they are stored (the registry's database); `search` fetches the shortlist's
templates through a callback and re-scores them with the full 1:1 `compare`, so returned scores are on
the compare scale and `matcher.THRESHOLDS` apply.

Rows live in growable arrays; removing a key moves the last row into its place, so adding and
removing are O(1) and the arrays stay dense. The first stage splits the rows between threads (the
compiled scan releases the GIL). `save` / `load` write and read a snapshot (one .npz) so a restarted
process does not recompute a million codes from the templates.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fpverify.matcher import codes
from fpverify.matcher.matching import compare
from fpverify.matcher.params import MatchParams
from fpverify.matcher.template import Template

SNAPSHOT_FORMAT = "fpverify-codegallery-1"


class CodeGallery:
    """Keys -> (code, count, group, digest) rows, scanned by `first_stage`. Not thread-safe for writes."""

    def __init__(self, p: codes.CodeParams = codes.DEFAULT_CODES, capacity: int = 1024) -> None:
        self.p = p
        self._n = 0
        self._keys: list[Hashable] = []
        self._row: dict[Hashable, int] = {}
        self._alloc(max(1, capacity))

    def _alloc(self, cap: int) -> None:
        old = getattr(self, "_codes", None)
        codes_, counts = (
            np.zeros((cap, self.p.words, self.p.gallery_cylinders), np.uint64),
            np.zeros(cap, np.uint8),
        )
        groups, digests = np.zeros(cap, np.int64), np.zeros(cap, np.uint64)
        if old is not None:
            n = self._n
            codes_[:n], counts[:n], groups[:n], digests[:n] = (
                old[:n],
                self._counts[:n],
                self._groups[:n],
                self._digests[:n],
            )
        self._codes, self._counts, self._groups, self._digests = codes_, counts, groups, digests

    def __len__(self) -> int:
        return self._n

    def __contains__(self, key: Hashable) -> bool:
        return key in self._row

    @property
    def keys(self) -> list[Hashable]:
        return list(self._keys)

    def key(self, row: int) -> Hashable:
        return self._keys[row]

    def row(self, key: Hashable) -> int:
        """Current row of `key` (rows move when others are removed)."""
        return self._row[key]

    def group(self, key: Hashable) -> int:
        return int(self._groups[self._row[key]])

    @property
    def nbytes(self) -> int:
        """Bytes of the row arrays in use (codes, counts, groups, digests); keys not included."""
        n = self._n
        return int(
            self._codes[:n].nbytes
            + self._counts[:n].nbytes
            + self._groups[:n].nbytes
            + self._digests[:n].nbytes
        )

    def add(self, key: Hashable, template: Template, group: int = 0, digest: int = 0) -> None:
        if not isinstance(template, Template):
            raise ValueError("gallery entries must be matcher.Template")
        code, count = codes.gallery_code(template, self.p)
        self.add_code(key, code, count, group, digest)

    def add_code(self, key: Hashable, code: np.ndarray, count: int, group: int = 0, digest: int = 0) -> None:
        """Add (or replace) one row from a precomputed (words, m) code."""
        if code.shape != self._codes.shape[1:]:
            raise ValueError(f"code shape {code.shape} does not match the gallery's {self._codes.shape[1:]}")
        row = self._row.get(key)
        if row is None:
            if self._n == len(self._counts):
                self._alloc(2 * len(self._counts))
            row = self._n
            self._n += 1
            self._keys.append(key)
            self._row[key] = row
        self._codes[row], self._counts[row] = code, min(int(count), 255)
        self._groups[row], self._digests[row] = group, np.uint64(digest)

    def extend(
        self,
        keys: Sequence[Hashable],
        code: np.ndarray,
        count: np.ndarray,
        group: np.ndarray,
        digest: np.ndarray,
    ) -> None:
        """Append many new keys at once (a rebuild or a benchmark); (k, words, m) codes."""
        k = len(keys)
        if code.shape[1:] != self._codes.shape[1:] or not (
            len(code) == len(count) == len(group) == len(digest) == k
        ):
            raise ValueError("extend needs one code, count, group and digest per key, in the gallery's shape")
        if any(key in self._row for key in keys) or len(set(keys)) != k:
            raise ValueError("extend adds new, distinct keys only")
        cap = len(self._counts)
        while cap < self._n + k:
            cap *= 2
        if cap != len(self._counts):
            self._alloc(cap)
        s, e = self._n, self._n + k
        self._codes[s:e], self._counts[s:e] = code, np.minimum(count, 255)
        self._groups[s:e], self._digests[s:e] = group, np.asarray(digest).astype(np.uint64)
        self._row.update(zip(keys, range(s, e), strict=True))
        self._keys.extend(keys)
        self._n = e

    def remove(self, key: Hashable) -> bool:
        """Drop `key` (the last row moves into its place); False when it was not there."""
        row = self._row.pop(key, None)
        if row is None:
            return False
        last = self._n - 1
        if row != last:
            moved = self._keys[last]
            self._keys[row] = moved
            self._row[moved] = row
            for a in (self._codes, self._counts, self._groups, self._digests):
                a[row] = a[last]
        self._keys.pop()
        self._n = last
        return True

    def with_digest(self, digest: int) -> list[Hashable]:
        """Keys whose template bytes had this digest (byte-identical uploads)."""
        rows = np.flatnonzero(self._digests[: self._n] == np.uint64(digest))
        return [self._keys[int(r)] for r in rows]

    def first_stage(self, probe: np.ndarray, threads: int = 1) -> np.ndarray:
        """Scores (T,) float32 of a probe code (`codes.probe_code`) against every row."""
        n = self._n
        out = np.zeros(n, np.float32)
        if n == 0 or len(probe) == 0:
            return out
        cuts = np.linspace(0, n, max(1, min(threads, n // 4096 + 1)) + 1).astype(int)
        args = [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        run = lambda ab: codes.scores(probe, self._codes, self._counts, self.p, ab[0], ab[1], out)  # noqa: E731
        if len(args) == 1:
            run(args[0])
        else:
            with ThreadPoolExecutor(len(args)) as pool:
                list(pool.map(run, args))
        return out

    def shortlist(
        self, probes: Sequence[Template], size: int, exclude_group: int | None = None, threads: int = 1
    ) -> list[Hashable]:
        """Union over the probes of each one's `size` best rows (first stage), best first per probe."""
        if size < 1:
            raise ValueError("shortlist size must be at least 1")
        seen: dict[Hashable, None] = {}
        excl = self._counts[: self._n] == 0  # no usable cylinder: nothing to re-rank
        if exclude_group is not None:
            excl |= self._groups[: self._n] == exclude_group
        for t in probes:
            pc = codes.probe_code(t, self.p)
            if len(pc) == 0:  # no usable cylinder: compare would score 0 against anything
                continue
            s = self.first_stage(pc, threads)
            s[excl] = -np.inf
            k = min(size, int(np.isfinite(s).sum()))
            if k <= 0:
                continue
            best = np.argpartition(-s, k - 1)[:k]
            for r in best[np.argsort(-s[best], kind="stable")]:
                seen.setdefault(self._keys[int(r)])
        return list(seen)

    # ---- snapshot -----------------------------------------------------------------------------

    def save(self, path: Path, meta: dict | None = None) -> None:
        """Write the rows and `meta` (JSON-able scalars, e.g. the feed version) to one .npz file."""
        n = self._n
        tmp = Path(path).with_suffix(".tmp.npz")
        np.savez(
            tmp,
            format=SNAPSHOT_FORMAT,
            params=np.array(_params_tuple(self.p)),
            keys=np.array([str(k).encode() for k in self._keys], dtype=bytes),
            codes=self._codes[:n],
            counts=self._counts[:n],
            groups=self._groups[:n],
            digests=self._digests[:n],
            meta=np.array(repr(sorted((meta or {}).items()))),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> tuple[CodeGallery, dict]:
        """Gallery (keys as str) and meta from `save`; ValueError when the file is not one or is stale."""
        import ast
        import zipfile

        try:
            z = np.load(path, allow_pickle=False)
            if str(z["format"]) != SNAPSHOT_FORMAT:
                raise ValueError("not a code gallery snapshot")
            p = codes.CodeParams(*(int(v) for v in z["params"]))
            g = cls(p, capacity=len(z["counts"]) + 1)
            n = len(z["counts"])
            g._codes[:n], g._counts[:n], g._groups[:n], g._digests[:n] = (
                z["codes"],
                z["counts"],
                z["groups"],
                z["digests"],
            )
            g._keys = [k.decode() for k in z["keys"].tolist()]
            meta = dict(ast.literal_eval(str(z["meta"])))
        except (
            OSError,
            KeyError,
            EOFError,
            SyntaxError,
            TypeError,
            ValueError,
            UnicodeDecodeError,
            zipfile.BadZipFile,
        ) as exc:
            raise ValueError(f"code gallery snapshot {path} unreadable: {exc}") from exc
        if len(g._keys) != n:
            raise ValueError("code gallery snapshot is inconsistent")
        g._n = n
        g._row = {k: i for i, k in enumerate(g._keys)}
        if p != codes.DEFAULT_CODES:
            raise ValueError("code gallery snapshot was made with other code parameters")
        return g, meta


def _params_tuple(p: codes.CodeParams) -> tuple[int, ...]:
    return (p.bits, p.gallery_cylinders, p.probe_cylinders, p.topk)


Fetch = Callable[[list[Hashable]], Iterable[tuple[Hashable, Template]]]


def search(
    probes: Sequence[Template],
    gallery: CodeGallery,
    fetch: Fetch,
    top_k: int = 10,
    shortlist: int = 200,
    exclude_group: int | None = None,
    threads: int = 1,
    params: MatchParams | None = None,
) -> list[tuple[Hashable, float]]:
    """Best `top_k` (key, score) for a set of probes (one finger's impressions, or one), best first.

    Each probe's `shortlist` best rows by the first stage are pooled; `fetch(keys)` yields their
    templates, and each is scored by the full `compare` against every probe (its best score counts).
    """
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    probes = list(probes)
    if any(not isinstance(t, Template) for t in probes):
        raise ValueError("probes must be matcher.Template")
    cand = gallery.shortlist(probes, shortlist, exclude_group, threads)
    if not cand:
        return []
    scored = [(key, max(compare(p, t, params) for p in probes)) for key, t in fetch(cand)]
    scored.sort(key=lambda kv: -kv[1])
    return scored[:top_k]
