"""Learned minutia detector: a small convolutional network distilled from LEADER, run in onnxruntime.

It answers like the classical skeleton detector (a prepared crop -> Minutiae in crop coordinates,
image y-down angles), so either can follow the shared stages (matcher.features.prepare). The network sees the contrast-normalised
crop, the Gabor-enhanced crop and the finger mask (3 channels, full resolution) and answers on a grid
of STRIDE pixels: a minutia logit, the sub-cell offset (x, y), the direction (cos, sin) and a
bifurcation logit. Decoding keeps local maxima above a threshold, inside the mask, at least
`learned_nms_px` apart. How it was trained, on what and with which figures: matcher/models/README.md;
the training code is `fpverify train extractor`.

The model is read once per path from the package (or the path given in the detector object, matcher.detectors) and kept
in a small cache: a read-only resource of the package, like the compiled kernels numba caches.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import cv2
import numpy as np

from fpverify.matcher.minutiae import BIFURCATION, ENDING, Minutiae
from fpverify.matcher.params import ExtractionParams

STRIDE = 4  # output grid, pixels of the 500-dpi image
CHANNELS = 3
SHIPPED = "minutiae-student-int8.onnx"  # in matcher/models: the int8 copy of minutiae-student.onnx
TRAINED = "minutiae-student.onnx"  # the float network it was quantized from (benchmark baselines)


def net_input(norm: np.ndarray, enhanced: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(3, H', W') float32 input, H' and W' rounded up to STRIDE (padding is off-finger zeros)."""
    h, w = mask.shape
    out = np.zeros((CHANNELS, -(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE), np.float32)
    out[0, :h, :w] = np.clip(norm, -3.0, 3.0) / 3.0
    out[1, :h, :w] = np.clip(enhanced, -3.0, 3.0) / 3.0
    out[2, :h, :w] = mask
    return out


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def decode(out: np.ndarray, border: np.ndarray, params: ExtractionParams) -> Minutiae:
    """Network output (6, H'/STRIDE, W'/STRIDE) -> Minutiae in crop pixels, strongest first, all of
    them (the detector keeps the best `max_minutiae`: after fusion, where fusion applies).

    `border`: the crop's distance to the mask edge (segmentation.border_distance).
    """
    prob = _sigmoid(out[0]).astype(np.float32)
    peak = prob >= cv2.dilate(prob, np.ones((3, 3), np.uint8))
    ii, jj = np.nonzero(peak & (prob > params.learned_threshold))
    x = ((jj + _sigmoid(out[1, ii, jj])) * STRIDE).astype(np.float32)
    y = ((ii + _sigmoid(out[2, ii, jj])) * STRIDE).astype(np.float32)
    h, w = border.shape
    xi = np.clip(np.round(x).astype(int), 0, w - 1)
    yi = np.clip(np.round(y).astype(int), 0, h - 1)
    inside = border[yi, xi] >= params.learned_margin
    ii, jj, x, y, xi, yi = ii[inside], jj[inside], x[inside], y[inside], xi[inside], yi[inside]
    p = prob[ii, jj]
    order = np.argsort(-p, kind="stable")
    keep = _suppress(x[order], y[order], params.learned_nms_px)
    sel = order[keep]
    ii, jj = ii[sel], jj[sel]
    angle = np.mod(np.arctan2(out[4, ii, jj], out[3, ii, jj]), 2 * np.pi).astype(np.float32)
    # quality: detection confidence, lowered near the mask border like the classical detector's
    ramp = np.sqrt(np.clip(border[yi[sel], xi[sel]] / params.quality_border_px, 0, 1))
    kind = np.where(out[5, ii, jj] > 0, BIFURCATION, ENDING).astype(np.int32)
    return Minutiae(x[sel], y[sel], angle, (p[sel] * ramp).astype(np.float32), kind)


def confirm(found: Minutiae, candidates: Minutiae, out: np.ndarray, border: np.ndarray,
            params: ExtractionParams) -> Minutiae:
    """Add the candidates (another detector's minutiae) that the network supports weakly.

    A candidate joins when the network's probability near it (3 x 3 cells) reaches
    `learned_confirm` and no detection lies within `learned_nms_px`: the skeleton finds minutiae the
    network scores just under its threshold (small or low-contrast prints), and the network vetoes
    the skeleton's false minutiae in noise. A joined minutia's quality is that probability times
    the border ramp, as for the network's own.
    A detection with a candidate within `learned_nms_px` takes the candidate's type: the skeleton's
    crossing number reads ending or bifurcation off the ridge topology, the network only guesses it.
    """
    if len(candidates) == 0:
        return found
    kind = found.kind.copy()
    if len(found):
        d = np.hypot(candidates.x[:, None] - found.x[None], candidates.y[:, None] - found.y[None])
        near = d.min(axis=1)
        closest = d.argmin(axis=0)
        typed = d[closest, np.arange(len(found))] <= params.learned_nms_px
        kind[typed] = candidates.kind[closest[typed]]
    else:
        near = np.full(len(candidates), np.inf)
    prob = cv2.dilate(_sigmoid(out[0]).astype(np.float32), np.ones((3, 3), np.uint8))
    gi = np.clip((candidates.y // STRIDE).astype(int), 0, prob.shape[0] - 1)
    gj = np.clip((candidates.x // STRIDE).astype(int), 0, prob.shape[1] - 1)
    support = prob[gi, gj]
    add = (support >= params.learned_confirm) & (near > params.learned_nms_px)
    if params.learned_confirm <= 0:
        add[:] = False
    h, w = border.shape
    xi = np.clip(np.round(candidates.x[add]).astype(int), 0, w - 1)
    yi = np.clip(np.round(candidates.y[add]).astype(int), 0, h - 1)
    ramp = np.sqrt(np.clip(border[yi, xi] / params.quality_border_px, 0, 1))
    joined = Minutiae(
        np.concatenate([found.x, candidates.x[add]]).astype(np.float32),
        np.concatenate([found.y, candidates.y[add]]).astype(np.float32),
        np.concatenate([found.angle, candidates.angle[add]]).astype(np.float32),
        np.concatenate([found.quality, support[add] * ramp]).astype(np.float32),
        np.concatenate([kind, candidates.kind[add]]).astype(np.int32),
    )
    return joined.take(np.argsort(-joined.quality, kind="stable")[: params.max_minutiae])


def _suppress(x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Indices (in the given order) of points with no earlier kept point within `radius`."""
    kept: list[int] = []
    r2 = radius * radius
    for k in range(x.size):
        if not kept or np.min((x[kept] - x[k]) ** 2 + (y[kept] - y[k]) ** 2) >= r2:
            kept.append(k)
    return np.asarray(kept, np.intp)


@lru_cache(maxsize=4)
def _session(path: str):
    import onnxruntime as ort

    if path:
        try:
            with open(path, "rb") as f:
                model = f.read()
        except OSError as e:
            raise ValueError(f"cannot read the minutia model {path!r}: {e.strerror}") from e
    else:
        model = resources.files("fpverify.matcher.models").joinpath(SHIPPED).read_bytes()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # one core per extraction; the station does one at a time
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise ValueError(f"not a usable minutia model ({path or SHIPPED}): {e}") from e


def float_model() -> str:
    """Path of the shipped network before quantization (a benchmark's baseline)."""
    return str(resources.files("fpverify.matcher.models").joinpath(TRAINED))


def model_metadata(path: str = "") -> dict[str, str]:
    """Metadata written by the trainer (training sets, teacher, steps)."""
    return dict(_session(path).get_modelmeta().custom_metadata_map)


# Mirror images the network also answers on (axes of the (1, C, H, W) input): left-right, up-down,
# both. Its answers are mapped back and averaged with the plain one: the network was trained on all
# flips, and the mean of four looks is steadier than one (held out, sensor condition: FMR1000 8.7 ->
# 8.0 %, desk FNMR after retry at fmr_1e-4 1.2 -> 0.4 % with 5 presses; docs/matcher.md).
FLIPS = ((-1,), (-2,), (-2, -1))


def run(norm: np.ndarray, enhanced: np.ndarray, mask: np.ndarray, model: str = "", flips: bool = True) -> np.ndarray:
    """The network's raw output (6, H'/STRIDE, W'/STRIDE) for a prepared crop; model "" = shipped.

    `flips`: the mean of the outputs on the crop and on its three mirror images (FLIPS), each flipped
    back: a mirrored x turns the x offset's logit and the direction's cosine around, a mirrored y
    the y offset's logit and the sine. The padded input is a whole number of grid cells, so cell j
    of a mirrored answer is cell (n - 1 - j) of the plain one.
    """
    s = _session(model)
    name = s.get_inputs()[0].name
    x = net_input(norm, enhanced, mask)[None]
    out = s.run(None, {name: x})[0][0]
    if not flips:
        return out
    total = out.astype(np.float64)
    for axes in FLIPS:
        o = np.flip(s.run(None, {name: np.ascontiguousarray(np.flip(x, axis=axes))})[0][0], axis=axes)
        sign = np.ones((o.shape[0], 1, 1))
        if -1 in axes:
            sign[[1, 3]] = -1.0
        if -2 in axes:
            sign[[2, 4]] = -1.0
        total += o * sign
    return (total / (1 + len(FLIPS))).astype(np.float32)


def probability_image(out: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Detection probability at crop resolution (debug view)."""
    prob = _sigmoid(out[0]).astype(np.float32)
    big = cv2.resize(prob, (prob.shape[1] * STRIDE, prob.shape[0] * STRIDE), interpolation=cv2.INTER_NEAREST)
    return big[: shape[0], : shape[1]]
