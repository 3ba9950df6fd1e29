"""1:N search: a gallery of templates preloaded into one array, scored in matrix products.

First stage (every gallery template): for each of the probe's cylinders, its best dot product
with the template's cylinders; the template's score is the mean of the `search_topk` best of
those. That is one matrix product plus two reductions, run either in numpy or in onnxruntime
(a small ONNX graph built here with the `onnx` helper API). Both give the same numbers.

Second stage (optional, default on): the best candidates are re-scored with the full 1:1
`compare`, so the returned scores are on the `compare` scale and `matcher.THRESHOLDS` apply.

This float gallery keeps 40 KB a template; past a few tens of thousands, `matcher.index` (128-bit
codes a cylinder, 0.5 KB a template, about 30x faster; docs/scale.md) is the first stage, and this
one its baseline in `fpverify bench search`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Literal

import numpy as np

from fpverify.matcher.matching import compare
from fpverify.matcher.params import MatchParams
from fpverify.matcher.template import DEFAULT_PARAMS, Template

Backend = Literal["numpy", "onnx"]
_CHUNK = 2048  # gallery templates per matrix product (keeps the score block in cache-sized pieces)


def _best_rows(t: Template, n: int) -> np.ndarray:
    """The template's `n` best-quality cylinders (rows of t.local.desc)."""
    loc = t.local
    if loc.count <= n:
        return loc.desc
    q = t.minutiae[loc.index, 3]
    keep = np.sort(np.argsort(-q, kind="stable")[:n])
    return loc.desc[keep]


def build_onnx_model(m: int, opset: int = 17):
    """ONNX graph: probe (P, D), gallery (T*m, D), k (1,) -> scores (T,)."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Gemm", ["probe", "gallery"], ["sim"], transB=1),  # (P, T*m)
        helper.make_node("Reshape", ["sim", "shape"], ["sim3"]),  # (P, T, m)
        helper.make_node("ReduceMax", ["sim3"], ["best"], axes=[2], keepdims=0),  # (P, T)
        helper.make_node("TopK", ["best", "k"], ["top", "top_idx"], axis=0),  # (k, T)
        helper.make_node("ReduceMean", ["top"], ["scores"], axes=[0], keepdims=0),  # (T,)
    ]
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [0, -1, m])
    graph = helper.make_graph(
        nodes,
        "fpverify_search",
        [
            helper.make_tensor_value_info("probe", TensorProto.FLOAT, ["P", "D"]),
            helper.make_tensor_value_info("gallery", TensorProto.FLOAT, ["TM", "D"]),
            helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["T"])],
        initializer=[shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


class Gallery:
    """Templates under caller-chosen keys, packed as a (T, m, D) float32 array for search."""

    def __init__(
        self,
        items: Iterable[tuple[Hashable, Template]] = (),
        params: MatchParams | None = None,
        threads: int = 0,
    ) -> None:
        self.params = params or DEFAULT_PARAMS
        self.threads = threads  # onnxruntime intra-op threads (0: its default)
        self._keys: list[Hashable] = []
        self._templates: list[Template] = []
        self._rows: list[np.ndarray] = []
        self._packed: np.ndarray | None = None
        self._session = None
        for key, t in items:
            self.add(key, t)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> list[Hashable]:
        return list(self._keys)

    def add(self, key: Hashable, template: Template) -> None:
        if not isinstance(template, Template):
            raise ValueError("gallery entries must be matcher.Template")
        self._keys.append(key)
        self._templates.append(template)
        self._rows.append(_best_rows(template, self.params.search_gallery_minutiae))
        self._packed = None

    def remove(self, key: Hashable) -> int:
        """Drop every entry under `key`; returns how many were dropped."""
        keep = [i for i, k in enumerate(self._keys) if k != key]
        dropped = len(self._keys) - len(keep)
        if dropped:
            self._keys = [self._keys[i] for i in keep]
            self._templates = [self._templates[i] for i in keep]
            self._rows = [self._rows[i] for i in keep]
            self._packed = None
        return dropped

    def template(self, i: int) -> Template:
        return self._templates[i]

    def packed(self) -> np.ndarray:
        """(T, m, D) float32; missing cylinders are zero rows (they score 0)."""
        if self._packed is None:
            m = self.params.search_gallery_minutiae
            from fpverify.matcher.descriptors import descriptor_length

            arr = np.zeros((len(self._rows), m, descriptor_length(self.params)), np.float32)
            for i, r in enumerate(self._rows):
                arr[i, : len(r)] = r
            self._packed = arr
        return self._packed

    def _onnx_session(self):
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            model = build_onnx_model(self.params.search_gallery_minutiae)
            self._session = ort.InferenceSession(
                model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        return self._session

    def probe_rows(self, probe: Template) -> np.ndarray:
        return np.ascontiguousarray(_best_rows(probe, self.params.search_probe_minutiae))

    def first_stage(self, probe: Template, backend: Backend = "numpy") -> np.ndarray:
        """Cheap score of the probe against every gallery template, shape (T,)."""
        g = self.packed()
        t, m, d = g.shape
        rows = self.probe_rows(probe)
        out = np.zeros(t, np.float32)
        if t == 0 or len(rows) == 0:
            return out
        k = min(self.params.search_topk, len(rows))
        flat = g.reshape(t * m, d)
        if backend == "numpy":
            for s in range(0, t, _CHUNK):
                e = min(t, s + _CHUNK)
                sim = (rows @ flat[s * m : e * m].T).reshape(len(rows), e - s, m)
                best = sim.max(axis=2)
                top = np.partition(best, len(rows) - k, axis=0)[len(rows) - k :]
                out[s:e] = top.mean(axis=0)
        elif backend == "onnx":
            sess = self._onnx_session()
            kk = np.array([k], np.int64)
            for s in range(0, t, _CHUNK):
                e = min(t, s + _CHUNK)
                (out[s:e],) = sess.run(None, {"probe": rows, "gallery": flat[s * m : e * m], "k": kk})
        else:
            raise ValueError(f"unknown backend {backend!r} (numpy or onnx)")
        return out


def search(
    probe: Template,
    gallery: Gallery,
    top_k: int = 10,
    backend: Backend = "numpy",
    rerank: int | None = None,
) -> list[tuple[Hashable, float]]:
    """The `top_k` best gallery entries for the probe, best first, as (key, score).

    `rerank` candidates from the first stage (default: max(4 * top_k, 32)) are re-scored with the
    full 1:1 `compare`, so scores are on the compare scale; `rerank=0` returns first-stage scores.
    """
    if not isinstance(probe, Template):
        raise ValueError("probe must be a matcher.Template")
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    n = len(gallery)
    if n == 0:
        return []
    first = gallery.first_stage(probe, backend=backend)
    if rerank is None:
        rerank = max(4 * top_k, 32)
    if rerank <= 0:
        k = min(top_k, n)
        best = np.argpartition(-first, k - 1)[:k]
        best = best[np.argsort(-first[best], kind="stable")]
        return [(gallery.keys[i], float(first[i])) for i in best]
    r = min(max(rerank, top_k), n)
    cand = np.argpartition(-first, r - 1)[:r]
    keys = gallery.keys
    scored = [(keys[i], compare(probe, gallery.template(int(i)), gallery.params)) for i in cand]
    scored.sort(key=lambda kv: -kv[1])
    return scored[:top_k]
