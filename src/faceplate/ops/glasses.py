"""Whether a face wears glasses the frame finder cannot see: clear plastic rims, the thin frames of a small face
(pure ops).

:mod:`faceplate.ops.occluders` finds thick dark frames as dark thin structures framing both eyes. Clear rims
are lighter than the skin with faint dark outlines, and a small face's frames blur to shallow lines: neither
is deep enough for it, and lid creases and wrinkles look no different to a cue at their depth. Two cues that
use where glasses sit, read in the face's eye frame (:func:`faceplate.ops.eyewear.eye_frame`; units of eye
distance, ``iod``, x out from the nose, y down the face):

- the bridge: a ridge (lighter or darker than both sides along the face's y) crossing the nose over its whole
  width (each third of x in +-0.12) between 0.3 above and 0.1 below the eye line, and 0.06 below the brows;
  a nose seldom has one there (the brows and glabella lines lie higher, the nose's own shading runs down it;
  a nasal-root crease can: a full bridge needs some rim too, RIM_FLOOR);
- the rims: of a family of lens outlines around both eyes (mirrored: a frame is symmetric), the one with
  the most ridge along it against the ridge 0.12-0.2 off it, scored by its 4th weakest of 16 sectors (a rim
  runs all round; creases and bags give a few sectors).

Where a face wears them, what is held out follows its frames (:func:`clear_frames`): the best lens pair is
refined along its rims (:func:`fit_lens`) and the lenses, RIM past that outline, with the top bar and the
arms, are the glasses (within the mesh's eyewear region, :mod:`faceplate.ops.eyewear`, which took the lower
lids, the cheeks under the lenses and the nose between them too: 24-34% of d12's labelled skin against 8-15%).

A turned face (yaw past ~30 degrees) is not judged: the nose's side and the far eye socket fall in the
bridge's window. Images are float32 RGB (H, W, 3) in [0, 1]; landmarks (478, >=2) in their pixels.
"""

from __future__ import annotations

import functools
import itertools

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.landmarks import EYE_INNER_L, EYE_INNER_R, EYE_OUTER_L, EYE_OUTER_R
from faceplate.ops.eyewear import eye_frame, eyewear_region
from faceplate.ops.filters import luma
from faceplate.ops.occluders import DETECT_IOD, MARGIN, features, occluder_matte, soft_matte
from faceplate.ops.regions import dilate, eye_distance, mesh_regions

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
Lens = tuple[float, float, float, float, float]  # centre x, y, half width, half height (iod), power

BRIDGE = 0.010  # luma: a bridge this deep is glasses (tuning, d12's first second: 0.012-0.029; the frontal dev
#                 faces without glasses: <= 0.0054 on 41 stills and frames, <= 0.0084 on 219 more clip frames:
#                 a nasal-root crease, fra_orig frame 30)
RIMS = 1.25  # rim contrast that, with half the bridge, is glasses (d12 0.6-2.0; faces without: <= 1.13)
RIM_FLOOR = 0.5  # and that a full bridge needs too (d12 >= 0.55; a nasal-root crease, fra_orig: 0.33-0.47)
FRONTAL = 0.85  # cos(yaw) (2-D over 3-D eye distance) below which a face is not judged
RIDGE = 0.05  # ridges are read across this offset (iod) either side
BRIDGE_X, BRIDGE_Y = 0.12, (-0.3, 0.1)  # the bridge window (iod): half width, top and bottom
BROW_GAP = 0.06  # and at least this below the brows' inner ends (iod): their lower edge and a glabella
#                  crease lie at most 0.02 below them on faces without glasses; bridges 0.09-0.24
SECTORS, WEAK = 8, 3  # sectors per lens; the rim score is the (WEAK+1)-th weakest of both lenses'
NEAR, FAR = (-0.04, -0.02, 0.0, 0.02, 0.04), (-0.2, -0.12, 0.12, 0.2)  # on and off a lens outline (iod)
LENSES: list[Lens] = list(itertools.product((0.58, 0.66, 0.74), (0.0, 0.08, 0.16), (0.44, 0.50, 0.56),
                                            (0.34, 0.40, 0.46), (2.0, 3.0)))  # fmt: skip
# lens outlines: centre x, y, half width, half height (iod), superellipse power: the labelled lenses of d12 and
# wan 0018/0024 lie within (0.65-0.75, 0.0-0.17) +- (0.5-0.6, 0.4-0.45), less half a rim
POINTS = 64  # per outline
FIT_STEP, FIT_ROUNDS, FIT_POWERS = 0.02, 6, (2.0, 2.5, 3.0)  # a found pair's lens fit (iod)
FIT_INNER = 0.1  # and its lenses' inner edges at least this far from the nose's midline (iod): the fit is
#                  looser across the nose than round the rest of the rim (d12 0120: 0.02, a hold-out over the nose)
RIM = 0.085  # a fitted lens is held out this far past its outline (iod): the rim's outer half and the fit's
#              error (d12: labelled rims 0.03-0.07 outside the fitted outline; at 0.07 de-age's lift moved
#              their edge by 0.3-0.8/255, at 0.1 it stepped 5.7/255 on the forehead above them)
BAR, ARM = 0.14, 0.3  # the top bar and the arms: from RIM above the lenses' top to BAR below it; the arms out
#                       ARM past the lenses' outer edge (iod)


def frontal(lm: NDArray[np.floating]) -> float:
    """cos(yaw) of a face (landmarks (478, 3)): the eye distance seen over the mesh's 3-D one (1 frontal)."""
    p = np.asarray(lm, np.float64)
    if p.shape[1] < 3:
        return 1.0
    e = [(p[a, :3] + p[b, :3]) / 2 for a, b in ((EYE_OUTER_R, EYE_INNER_R), (EYE_OUTER_L, EYE_INNER_L))]
    return float(np.linalg.norm(e[1][:2] - e[0][:2]) / max(float(np.linalg.norm(e[1] - e[0])), 1e-6))


def sample(img: F32, frame: tuple[F64, F64, F64], pts: F64) -> F32:
    """``img`` (H, W) read (bilinear) at eye-frame points ``pts`` (..., 2)."""
    o, ax, ay = frame
    px = o[0] + pts[..., 0] * ax[0] + pts[..., 1] * ay[0]
    py = o[1] + pts[..., 0] * ax[1] + pts[..., 1] * ay[1]
    shape = pts.shape[:-1]
    flat = lambda a: np.ascontiguousarray(a.reshape(1, -1), np.float32)  # noqa: E731
    out = cv2.remap(img, flat(px), flat(py), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, np.float32).reshape(shape)


def ridge(y: F32, frame: tuple[F64, F64, F64], pts: F64, normal: F64) -> F32:
    """Ridge depth (...) of luma ``y`` (H, W) at eye-frame points ``pts`` (..., 2) across unit ``normal``
    (..., 2): how much lighter, or darker, the point is than both points RIDGE either side (0 if neither)."""
    a, c, b = (sample(y, frame, pts + s * RIDGE * normal) for s in (-1.0, 0.0, 1.0))
    return np.maximum(np.maximum(np.minimum(a - c, b - c), np.minimum(c - a, c - b)), 0.0)


def brow_bottom(lm: NDArray[np.floating], frame: tuple[F64, F64, F64]) -> float:
    """The eye-frame y (iod) of the brows' lowest point within 0.4 of the nose's midline (landmarks (478, >=2))."""
    o, ax, ay = frame
    pts = np.asarray(lm, np.float64)[np.concatenate([mesh_regions()[n] for n in ("brow_r", "brow_l")]), :2]
    e = np.linalg.solve(np.stack([ax, ay], 1), (pts - o).T).T
    inner = e[np.abs(e[:, 0]) < 0.4, 1]
    return float(inner.max()) if len(inner) else BRIDGE_Y[0]


def bridge_depth(y: F32, frame: tuple[F64, F64, F64], top: float = BRIDGE_Y[0]) -> float:
    """The deepest ridge (luma) crossing the nose in the bridge window below ``top`` (eye-frame y), each third
    of its width counted."""
    ys = np.linspace(BRIDGE_Y[0], BRIDGE_Y[1], 21)
    grid = np.stack(np.meshgrid(np.linspace(-BRIDGE_X, BRIDGE_X, 9), ys), -1)  # (21, 9, 2)
    r = ridge(y, frame, grid, np.broadcast_to(np.array([0.0, 1.0]), grid.shape))
    thirds = np.stack([r[:, i : i + 3].mean(1) for i in (0, 3, 6)], 1).min(1) * (ys >= top)
    return float(thirds.max())


@functools.lru_cache(maxsize=4096)
def lens_outline(cx: float, cy: float, hw: float, hh: float, power: float, side: float) -> tuple[F64, F64]:
    """(points, outward unit normals), each (POINTS, 2) in eye-frame units, of one lens outline; ``side`` -1
    for the face's right eye (image left), +1 left. Cached (the fit scores the same ~350 outlines on every
    face): read-only arrays."""
    t = np.linspace(0, 2 * np.pi, POINTS, endpoint=False)
    c, s, e = np.cos(t), np.sin(t), 2.0 / power
    x, y = cx + hw * np.sign(c) * np.abs(c) ** e, cy + hh * np.sign(s) * np.abs(s) ** e
    n = np.stack([(x - cx) / hw**2, (y - cy) / hh**2], 1)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    pts, normals = np.stack([side * x, y], 1), n * np.array([side, 1.0])
    pts.flags.writeable = normals.flags.writeable = False
    return pts, normals


def rim_scores(y: F32, feat: F32, frame: tuple[F64, F64, F64], lenses: list[Lens]) -> F64:
    """Each lens pair's rim score (L,): per sector, the ridge on the outline (the best of NEAR offsets; not on
    the eyes, brows and lips ``feat`` (H, W)) over that FAR off it, its (WEAK+1)-th weakest sector."""
    outs = [lens_outline(*lens, side) for lens in lenses for side in (-1.0, 1.0)]
    p = np.stack([o[0] for o in outs])  # (2L, POINTS, 2)
    n = np.stack([o[1] for o in outs])
    on = np.max([ridge(y, frame, p + d * n, n) for d in NEAR], 0) * (sample(feat, frame, p) < 0.5)
    off = np.mean([ridge(y, frame, p + d * n, n) for d in FAR], 0)
    on_s = on.reshape(len(lenses), 2 * SECTORS, -1).mean(2)
    off_s = off.reshape(len(lenses), 2 * SECTORS, -1).mean(2)
    ratio = on_s / (off_s + np.median(off_s, axis=1, keepdims=True) + 1e-3)
    return np.asarray(np.sort(ratio, axis=1)[:, WEAK], np.float64)


def rim_contrast(y: F32, feat: F32, frame: tuple[F64, F64, F64]) -> float:
    """The best lens pair's rim score (:func:`rim_scores`) of the LENSES family."""
    return float(rim_scores(y, feat, frame, LENSES).max())


def fit_lens(y: F32, feat: F32, frame: tuple[F64, F64, F64]) -> Lens:
    """The lens pair (cx, cy, half width, half height, power; eye-frame units) whose outline runs along the
    rims: the LENSES family's best by :func:`rim_scores`, then moved FIT_STEP at a time in each of its sizes
    (and its power among FIT_POWERS) while that scores better (at most FIT_ROUNDS rounds), its inner
    edges FIT_INNER or more from the nose's midline."""
    family = [c for c in LENSES if c[0] - c[2] >= FIT_INNER - 1e-9]
    best = family[int(rim_scores(y, feat, frame, family).argmax())]
    for _ in range(FIT_ROUNDS):
        cx, cy, hw, hh, pw = best
        cands = [best]
        for d in (-FIT_STEP, FIT_STEP):
            cands += [(cx + d, cy, hw, hh, pw), (cx, cy + d, hw, hh, pw)]
            cands += [(cx, cy, hw + d, hh, pw), (cx, cy, hw, hh + d, pw)]
        cands += [(cx, cy, hw, hh, p) for p in FIT_POWERS if p != pw]
        cands = [c for c in cands if c[0] - c[2] >= FIT_INNER - 1e-9] or [best]
        nxt = cands[int(rim_scores(y, feat, frame, cands).argmax())]
        if nxt == best:
            break
        best = nxt
    return best


def lens_hold_out(lens: Lens, lm: NDArray[np.floating], shape: tuple[int, int]) -> F32:
    """The glasses (H, W) {0, 1} round a fitted lens pair ``lens`` (:func:`fit_lens`) on the face with
    landmarks ``lm``: both lenses to RIM past their outline, the top bar across the nose between them and the
    arms out from their outer edges (BAR: from RIM above the lenses' top to this far below it), all within
    the mesh's eyewear region (:func:`faceplate.ops.eyewear.eyewear_region`: never more than it)."""
    cx, cy, hw, hh, power = lens
    o, ax, ay = eye_frame(lm)
    top, inner, outer = cy - hh, cx - hw, cx + hw
    canvas = np.zeros(shape, np.uint8)
    to_px = lambda e: np.round((o + e[:, :1] * ax + e[:, 1:] * ay) * 16).astype(np.int32)  # noqa: E731
    for side in (-1.0, 1.0):
        pts, normals = lens_outline(cx, cy, hw, hh, power, side)
        cv2.fillPoly(canvas, [to_px(pts + RIM * normals)], (1,), shift=4)
        arm = np.array([[inner, top - RIM], [outer + ARM, top - RIM], [outer + ARM, top + BAR],
                        [inner, top + BAR]]) * np.array([side, 1.0])  # fmt: skip
        cv2.fillPoly(canvas, [to_px(arm)], (1,), shift=4)
    bar = np.array([[-inner - RIM, top - RIM], [inner + RIM, top - RIM], [inner + RIM, top + BAR],
                    [-inner - RIM, top + BAR]])  # fmt: skip
    cv2.fillPoly(canvas, [to_px(bar)], (1,), shift=4)
    return canvas.astype(np.float32) * (eyewear_region(lm, shape) > 0.5)


def clear_frames(img: F32, lm: NDArray[np.floating], iod: float | None = None) -> F32:
    """The glasses (H, W) {0, 1} of an aligned face (as :func:`glasses_cues`) that wears glasses by its bridge
    and rims (:func:`wears_glasses`): round the lens pair fitted to its rims (:func:`lens_hold_out`);
    all 0 when it wears none (or is too turned to judge)."""
    iod = iod or eye_distance(lm)
    y, xy, k = detect_luma(img, lm, iod)
    frame = eye_frame(xy)
    if not verdict(*cues(y, xy, frame, iod * k)):
        return np.zeros(img.shape[:2], np.float32)
    feat = features(xy[:, :2], (y.shape[0], y.shape[1]), iod * k)
    lens = fit_lens(y, feat, frame)
    return lens_hold_out(lens, lm, (img.shape[0], img.shape[1]))


def glasses_matte(img: F32, lm: NDArray[np.floating], iod: float | None = None) -> F32:
    """The glasses matte (R, R) of an aligned face (as :func:`faceplate.ops.occluders.occluder_matte`): its dark
    frames or, where none is dark enough to see, the clear or thin frames told by their bridge and rims
    (:func:`clear_frames`), grown by MARGIN and softened alike."""
    iod = iod or eye_distance(lm)
    occ = occluder_matte(img, lm, iod)
    if occ.any():
        return occ
    return soft_matte(dilate(clear_frames(img, lm, iod), MARGIN * iod), iod)


def detect_luma(img: F32, lm: NDArray[np.floating], iod: float) -> tuple[F32, F64, float]:
    """(luma (h, w) lightly blurred, landmarks, scale k) of an aligned face (``img`` (R, R, 3), ``lm``
    (478, >=2)) shrunk by k so the eyes are at most DETECT_IOD px apart: what the cues are read on."""
    k = min(1.0, DETECT_IOD / iod)
    small = img if k == 1.0 else np.asarray(cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA), np.float32)
    xy = np.asarray(lm, np.float64).copy()
    xy[:, :2] *= np.array([small.shape[1] / img.shape[1], small.shape[0] / img.shape[0]])
    if xy.shape[1] > 2:
        xy[:, 2:] *= k
    y = np.asarray(cv2.GaussianBlur(luma(small), (0, 0), max(0.5, 0.0125 * iod * k)), np.float32)
    return y, xy, k


def cues(y: F32, xy: F64, frame: tuple[F64, F64, F64], iod: float) -> tuple[float, float, float]:
    """(cos yaw, bridge depth, rim contrast) read on :func:`detect_luma`'s luma and landmarks (eyes ``iod``
    px apart there); the rim contrast is 0 unless the bridge is half BRIDGE deep."""
    depth = bridge_depth(y, frame, brow_bottom(xy, frame) + BROW_GAP)
    rims = 0.0
    if depth >= BRIDGE / 2:
        rims = rim_contrast(y, features(xy[:, :2], (y.shape[0], y.shape[1]), iod), frame)
    return frontal(xy), depth, rims


def glasses_cues(img: F32, lm: NDArray[np.floating], iod: float | None = None) -> tuple[float, float, float]:
    """(cos yaw, bridge depth, rim contrast) of an aligned face (``img`` (R, R, 3), ``lm`` (478, >=2)), read
    with the eyes at most DETECT_IOD px apart; the rim contrast is 0 unless the bridge is half BRIDGE deep."""
    iod = iod or eye_distance(lm)
    y, xy, k = detect_luma(img, lm, iod)
    return cues(y, xy, eye_frame(xy), iod * k)


def verdict(cos_yaw: float, depth: float, rims: float) -> bool | None:
    """Glasses by the cues (:func:`glasses_cues`); None when the face is too turned to judge."""
    if cos_yaw < FRONTAL:
        return None
    return (depth >= BRIDGE and rims >= RIM_FLOOR) or (depth >= BRIDGE / 2 and rims >= RIMS)


def wears_glasses(img: F32, lm: NDArray[np.floating], iod: float | None = None) -> bool | None:
    """Whether an aligned face (as :func:`glasses_cues`) wears glasses by the bridge and rims; None when it
    is too turned to judge."""
    return verdict(*glasses_cues(img, lm, iod))


def track_wears_glasses(votes: list[bool | None]) -> bool:
    """A track's verdict from its sample faces' (:func:`wears_glasses`): glasses when at least half of those
    judged say so (none judged: no)."""
    judged = [v for v in votes if v is not None]
    return bool(judged) and 2 * sum(judged) >= len(judged)
