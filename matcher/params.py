"""All tunables of the matcher, in one place.

Two sections, two owners: ``ExtractionParams`` (image -> minutiae, extraction engineer) and
``MatchParams`` (template comparison, matching engineer). Both are frozen so they can key caches.
"""

from __future__ import annotations

from dataclasses import dataclass

from fpverify.matcher.detectors import Detector, FusedDetector

# ---------------------------------------------------------------------------------------------
# Extraction (owner: extraction engineer). Lengths are pixels of the 500-dpi normalised image.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractionParams:
    # input checks (validate.py)
    target_dpi: int = 500
    min_dpi: int = 250
    max_dpi: int = 1000
    min_side: int = 64  # after resizing to 500 dpi
    max_side: int = 2000
    min_dynamic_range: int = 8  # grey levels between 1st and 99th percentile; below = "constant"

    # contrast normalisation (segmentation.py)
    norm_sigma: float = 10.0  # local mean / std window

    # segmentation (segmentation.py)
    block: int = 8  # pixels per mask / orientation cell
    seg_smooth_blocks: float = 1.5  # gaussian sigma (blocks) on block features
    seg_energy_rel: float = 0.10  # gradient energy relative to the image's 90th percentile
    seg_coherence_min: float = 0.15  # minimum ridge-flow coherence of a foreground block
    seg_strong_energy_rel: float = 0.45  # energy that counts as finger whatever the coherence
    seg_close_blocks: int = 2  # morphological closing radius (blocks)
    seg_open_blocks: int = 2  # morphological opening radius (blocks)
    seg_erode_px: int = 4  # pull the pixel mask in by this much after smoothing
    seg_min_area_blocks: int = 16  # smaller foreground -> empty mask
    seg_flat_rel: float = 0.02  # fine-texture energy (vs the 90th percentile) of a textureless block
    seg_flat_margin_blocks: int = 1  # keep this far from textureless areas (sensor frame edges)
    clarity_sigma: float = 6.0  # window of the ridge-clarity measure (Gabor energy / input energy)
    seg_clarity_min: float = 0.06  # after enhancement, blocks below this clarity leave the mask
    seg_band_min: float = 0.30  # ... and blocks with less of their spectrum in the ridge band

    # orientation (orientation.py)
    grad_sigma: float = 1.2  # pre-smoothing before the gradient
    orient_fine_blocks: float = 1.0  # doubled-angle smoothing, fine scale (blocks)
    orient_coarse_blocks: float = 2.0  # coarse scale, used where the fine scale is incoherent
    orient_coherence_lo: float = 0.15  # below: coarse orientation only
    orient_coherence_hi: float = 0.45  # above: fine orientation only

    # ridge frequency (frequency.py)
    period_min: float = 5.0
    period_max: float = 15.0
    period_default: float = 9.0  # used when no spectral peak is found
    freq_window: int = 32  # block FFT window for the local period map
    freq_step: int = 16
    freq_smooth_blocks: float = 1.5

    # contextual Gabor enhancement (enhancement.py)
    enhance_scale: int = 1  # filter at 1/scale resolution (2: 2.5x faster, +0.3 points of EER)
    gabor_orientations: int = 16
    gabor_sigma_across: float = 0.50  # times the period, across the ridges
    gabor_sigma_along: float = 0.50  # times the period, along the ridges
    # filter bank periods (a fixed grid, so cached filters are reused); each pixel takes the nearest
    gabor_period_bins: tuple[float, ...] = (6.0, 7.0, 8.0, 9.5, 11.0, 13.0)

    # minutia detector (matcher/detectors.py): FusedDetector (the network's minutiae plus the skeleton's
    # that the network confirms), LearnedDetector or SkeletonDetector; the network's model is the
    # detector's `model` (empty: the one shipped in matcher/models)
    detector: Detector = FusedDetector()
    learned_threshold: float = 0.3  # minimum detection probability
    learned_nms_px: float = 6.0  # detections closer than this keep only the strongest
    learned_margin: float = 4.0  # minimum distance to the mask border
    learned_confirm: float = 0.05  # "fused": network probability that admits a skeleton minutia

    # classical skeleton detector (minutiae.py)
    border_margin: float = 8.0  # minimum distance to the mask border
    spur_length: int = 8  # ending-to-bifurcation branches shorter than this are spurs
    short_ridge_length: int = 10  # ending-to-ending ridges shorter than this are noise
    bridge_length: int = 12  # bifurcation-to-bifurcation links shorter than this
    bridge_angle_deg: float = 35.0  # ... and this far off the ridge flow are bridges
    break_distance: float = 1.6  # times the period: facing endings closer than this are breaks
    break_angle_deg: float = 40.0
    close_pair_distance: float = 4.0  # any two minutiae closer than this are both removed
    cluster_radius: float = 20.0  # minutiae with more than cluster_max neighbours within this are noise
    cluster_max: int = 6
    direction_radius: int = 9  # skeleton disc used to orient a minutia
    quality_border_px: float = 32.0  # quality reaches 1 at this distance to the mask border
    quality_coherence_ref: float = 0.6  # coherence giving full quality
    quality_clarity_ref: float = 0.4  # ridge clarity giving full quality
    min_quality: float = 0.0  # minutiae below are dropped (dropping any hurt matching: keep all)
    max_minutiae: int = 200  # keep the best this many

    # capture quality (quality.py)
    quality_min_area_px: int = 20000  # finger area at 500 dpi (~7 x 7 mm); below -> "small_area"
    quality_good_area_px: int = 60000  # area giving full marks
    quality_min_contrast: float = 0.15  # (95th - 5th percentile grey) / 255 on the finger
    quality_good_contrast: float = 0.30
    quality_min_minutiae: int = 12
    quality_good_minutiae: int = 30
    quality_min_clarity: float = 0.25  # mean minutia quality


# ---------------------------------------------------------------------------------------------
# Matching (owner: matching engineer): MatchParams goes below this line.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchParams:
    """Minutia Cylinder-Code descriptors + LSS-R consolidation (Cappelli, Ferrara, Maltoni 2010).

    Distances are pixels of the 500-dpi normalised image, angles radians.
    """

    # Cylinder geometry: radius, spatial cells per side, angular sections.
    cyl_radius: float = 70.0
    cyl_ns: int = 8
    cyl_nd: int = 6
    sigma_s: float = 7.0
    sigma_d: float = 0.4363  # 5*pi/36
    # Cell contribution sigmoid Psi(v) = 1 / (1 + exp(-tau (v - mu))).
    psi_mu: float = 0.01
    psi_tau: float = 400.0
    # A cylinder is kept only if this fraction of its cells lies on the finger and it sees enough
    # neighbours (otherwise it is mostly border noise).
    min_valid_fraction: float = 0.4
    min_neighbours: int = 2
    # Convex-hull margin used when no segmentation mask is known (ISO records).
    hull_margin: float = 50.0
    # At most this many minutiae per template (best quality first): bounds compare time.
    max_minutiae: int = 64
    # Local pairs whose directions differ by more than this are not candidates.
    max_rotation: float = 1.5708  # pi/2

    # LSS-R: pairs entering relaxation, pairs scored, relaxation weights.
    n_relax_pairs: int = 48
    min_np: int = 3
    max_np: int = 10
    np_mu: float = 20.0
    np_tau: float = 0.4
    relax_iters: int = 5
    relax_w: float = 0.2
    # Pair compatibility: Gaussian tolerance on distance (px) and on the two angles (radians).
    rho_sigma_d: float = 6.0
    rho_sigma_a: float = 0.25

    # Global consolidation: align on the relaxed pairs, count minutiae pairing within these
    # tolerances, normalise by the minutiae in the common area (at least min_overlap each).
    pair_tol_d: float = 20.0
    pair_tol_a: float = 0.5236  # pi/6
    min_overlap: int = 8
    # Each minutia counts quality ** this in the pairing (a matched pair sqrt(qa * qb), the common area
    # the sum of its minutiae's weights): a doubtful detection neither makes nor spoils a match much.
    # 0 counts every minutia alike (before 2026-12-07, fourth session; docs/matcher.md).
    pair_quality_power: float = 2.0
    # ... and exp(-d^2 / 2 sigma^2) of its distance d after the final alignment: a pair that only just
    # falls within pair_tol_d (most chance pairings of an impostor) counts little. 0: not weighted.
    pair_sigma_d: float = 8.0
    pair_refine: int = 1  # least-squares refits of the alignment on the paired minutiae
    # Final score = lss_r ** score_mix * pairing ** (1 - score_mix); 1.0 disables pairing.
    score_mix: float = 0.5
    # ... raised to this power: monotonic, so no error rate changes; it only spreads the scores so that
    # operating thresholds sit near 0.09-0.15 instead of 0.01-0.02 (readable on screens and in reports).
    score_power: float = 0.5

    # 1:N first stage: gallery minutiae kept per template, probe minutiae kept, top-k averaged.
    search_gallery_minutiae: int = 32
    search_probe_minutiae: int = 48
    search_topk: int = 12
