"""FVC-style image sets: `<set>/<finger>_<impression>.png`, resolution per set from the MANIFEST."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

# Resolution of each set (MANIFEST.md); every other set is 500 dpi.
DPI = {"fvc2002_db2_b": 569, "fvc2004_db3_b": 512}
FVC_SETS = tuple(
    f"fvc{year}_db{db}_b" for year in (2000, 2002, 2004) for db in (1, 2, 3, 4)
)
# Fingers that appear in two sets (the same finger under another name): never an impostor pair.
# FVC2000 DB1 and DB2 were taken from the same volunteers with the same numbering (all ten B fingers
# match each other across the two sets, median score at genuine level); fvc2002_db3_b finger 108 and
# fvc2004_db3_b finger 102 score at genuine level on all 64 of their pairs (median 0.18, against 0.13
# for the impostors' 99th percentile), so they are taken to be one finger.
SAME_FINGER = {
    **{("fvc2000_db2_b", f): ("fvc2000_db1_b", f) for f in range(101, 111)},
    ("fvc2004_db3_b", 102): ("fvc2002_db3_b", 108),
}
SENSOR_SHAPE = (288, 256)  # rows x columns of a ZFM/R307 image
_NAME = re.compile(r"^(\d+)_(\d+)\.png$")


def default_root() -> Path:
    """$FPVERIFY_DATASETS, else shared/datasets beside the project folder (whatever the current folder)."""
    env = os.environ.get("FPVERIFY_DATASETS")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def missing(root: Path) -> str:
    """What to say when no set is found: where we looked and how to point elsewhere."""
    return (f"no FVC sets under {root}: set FPVERIFY_DATASETS (or --datasets) to the folder holding "
            f"{FVC_SETS[0]}, {FVC_SETS[1]}, ...")


def dpi_of(name: str) -> int:
    return DPI.get(name, 500)


def year_of(name: str) -> str:
    """The FVC year of a set name ('fvc2004_db2_b' -> '2004'); '' for a set that is not an FVC one."""
    m = re.match(r"^fvc(\d{4})_", name)
    return m.group(1) if m else ""


def identity(name: str, finger: int) -> tuple[str, int]:
    """One name for a finger that appears in two sets (SAME_FINGER): compare identities, not labels."""
    return SAME_FINGER.get((name, finger), (name, finger))


def available_sets(root: Path) -> list[str]:
    return [s for s in FVC_SETS if (root / s).is_dir()]


def load_set(root: Path, name: str) -> dict[tuple[int, int], np.ndarray]:
    """{(finger, impression): uint8 image}, sorted by finger then impression."""
    from PIL import Image

    folder = root / name
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset {name!r} not found under {root} (set FPVERIFY_DATASETS or --datasets)")
    out: dict[tuple[int, int], np.ndarray] = {}
    for path in sorted(folder.iterdir()):
        m = _NAME.match(path.name)
        if m:
            with Image.open(path) as im:
                out[(int(m.group(1)), int(m.group(2)))] = np.asarray(im.convert("L"))
    if not out:
        raise FileNotFoundError(f"no <finger>_<impression>.png files in {folder}")
    return dict(sorted(out.items()))


def load_condition(root: Path, name: str, condition: str) -> tuple[dict[tuple[int, int], np.ndarray], int]:
    """(images, dpi) of a set as a benchmark condition sees it: native, or as the sensor sends it."""
    if condition not in ("native", "sensor"):
        raise ValueError("condition must be native or sensor")
    images = load_set(root, name)
    dpi = dpi_of(name)
    if condition == "sensor":
        return {k: to_sensor(v, dpi) for k, v in images.items()}, 500
    return images, dpi


def finger_centre(image: np.ndarray) -> tuple[int, int]:
    """Centre (row, col) of the ridge area: where local contrast is high."""
    import cv2

    img = image.astype(np.float32)
    mean = cv2.blur(img, (15, 15))
    var = cv2.blur(img * img, (15, 15)) - mean * mean
    fg = var > max(0.25 * float(np.percentile(var, 95)), 1.0)
    if not fg.any():
        return image.shape[0] // 2, image.shape[1] // 2
    rows, cols = np.nonzero(fg)
    return int(np.median(rows)), int(np.median(cols))


def to_sensor(image: np.ndarray, dpi: int) -> np.ndarray:
    """What a 500-dpi ZFM/R307 sensor would send: 256x288 around the finger, 4 bits per pixel."""
    return sensor_window(image, dpi)[0]


def sensor_window(image: np.ndarray, dpi: int, bits: int = 4) -> tuple[np.ndarray, int, int]:
    """`to_sensor`'s image and where its window starts (top, left) in the 500-dpi image, so that
    500-dpi coordinates (a teacher's minutiae) map into the window by subtracting them. `bits` < 8
    keeps that many bits a pixel, scaled back to 0..255 (the sensor protocol's 4)."""
    import cv2

    img = image
    if dpi != 500:
        scale = 500.0 / dpi
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = SENSOR_SHAPE
    cy, cx = finger_centre(img)
    canvas = np.full((h, w), 255, np.uint8)  # no finger: white, like a clean platen
    top, left = cy - h // 2, cx - w // 2
    sy0, sx0 = max(0, top), max(0, left)
    sy1, sx1 = min(img.shape[0], top + h), min(img.shape[1], left + w)
    canvas[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = img[sy0:sy1, sx0:sx1]
    drop = 8 - bits
    return ((canvas >> drop) * (255 // ((1 << bits) - 1))).astype(np.uint8), top, left
