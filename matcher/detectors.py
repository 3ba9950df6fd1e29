"""Minutia detectors: one interface, three implementations.

Every detector starts from the shared stages (`features.prepare`: a `Prepared` crop with the
normalised and enhanced images, the mask and the orientation field) and answers `Minutiae` in crop
coordinates with image y-down angles; `features.extract_features` packages them.

  SkeletonDetector  binarise, thin, clean, detect, filter (minutiae.py);
  LearnedDetector   the network distilled from LEADER (learned.py, onnxruntime);
  FusedDetector     (the default) the network's minutiae plus the skeleton's that it confirms.

`ExtractionParams.detector` holds one of these objects (frozen, so the params stay a cache key);
names ("fused", "learned", "skeleton") exist only where people type them: the CLI maps them here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from fpverify.matcher.features import Prepared
    from fpverify.matcher.minutiae import Minutiae
    from fpverify.matcher.params import ExtractionParams

# The stage modules import params.py, whose ExtractionParams default is a detector of this module:
# they are imported inside the methods so that importing params first does not go round in a circle.

Debug = Callable[[str, np.ndarray], None]
SHARED_STAGES = ("normalised", "orientation", "frequency", "mask", "enhanced")


@runtime_checkable
class Detector(Protocol):
    name: ClassVar[str]
    stages: ClassVar[tuple[str, ...]]  # debug images written after SHARED_STAGES, in order

    def detect(self, p: Prepared, params: ExtractionParams, debug: Debug | None = None) -> Minutiae: ...

    def describe(self) -> dict:
        """What a benchmark report says about this detector (name; model and its training sets)."""
        ...


@dataclass(frozen=True)
class SkeletonDetector:
    """Classical detector: binarise the enhanced ridges, thin them, read minutiae off the skeleton."""

    name: ClassVar[str] = "skeleton"
    stages: ClassVar[tuple[str, ...]] = ("binary", "skeleton", "minutiae")

    def detect(self, p: Prepared, params: ExtractionParams, debug: Debug | None = None) -> Minutiae:
        from fpverify.matcher.minutiae import binarise, clean_skeleton, extract_minutiae, thin

        binary = binarise(p.enhanced, p.mask)
        skeleton = clean_skeleton(thin(binary), p.angle_at, params)
        m = extract_minutiae(skeleton, p.border, p.angle_at, p.reliability_at, p.period, params)
        if debug:
            from fpverify.matcher.normalisation import to_uint8

            debug("binary", to_uint8(p.full(binary.astype(np.float32), 0.0), 0, 1))
            debug("skeleton", to_uint8(p.full(skeleton.astype(np.float32), 0.0), 0, 1))
        return m

    def describe(self) -> dict:
        return {"detector": self.name}


@dataclass(frozen=True)
class LearnedDetector:
    """The distilled network alone. `model`: path of an ONNX model; empty = the one shipped.
    `flips`: average the network's answers on the crop and its mirror images (learned.run)."""

    model: str = ""
    flips: bool = True
    name: ClassVar[str] = "learned"
    stages: ClassVar[tuple[str, ...]] = ("detection", "minutiae")

    def detect(self, p: Prepared, params: ExtractionParams, debug: Debug | None = None) -> Minutiae:
        from fpverify.matcher import learned

        out = learned.run(p.norm, p.enhanced, p.mask, self.model, self.flips)
        m = self._refine(learned.decode(out, p.border, params), out, p, params, debug)
        if debug:
            from fpverify.matcher.normalisation import to_uint8

            debug("detection", to_uint8(p.full(learned.probability_image(out, p.mask.shape), 0.0), 0, 1))
        return m

    def _refine(
        self, m: Minutiae, out: np.ndarray, p: Prepared, params: ExtractionParams, debug: Debug | None
    ) -> Minutiae:
        return m.take(np.arange(min(len(m), params.max_minutiae)))  # decoded strongest first

    def describe(self) -> dict:
        from fpverify.matcher import learned

        meta = learned.model_metadata(self.model)
        return {
            "detector": self.name,
            "model": self.model or learned.SHIPPED,
            "training_sets": [t for t in meta.get("fpverify.training_sets", "").split(",") if t],
            "held_out": meta.get("fpverify.held_out", ""),
            "quantized": meta.get("fpverify.quantized", ""),
            "flips": self.flips,
        }


@dataclass(frozen=True)
class FusedDetector(LearnedDetector):
    """The network's minutiae plus the skeleton's that the network supports (learned.confirm)."""

    name: ClassVar[str] = "fused"
    stages: ClassVar[tuple[str, ...]] = ("binary", "skeleton", "detection", "minutiae")

    def _refine(
        self, m: Minutiae, out: np.ndarray, p: Prepared, params: ExtractionParams, debug: Debug | None
    ) -> Minutiae:
        from fpverify.matcher import learned

        return learned.confirm(m, SkeletonDetector().detect(p, params, debug), out, p.border, params)
