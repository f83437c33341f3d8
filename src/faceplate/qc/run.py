"""``run_qc``: one pass over a render against its plate and shot, then identity on the flagged frames.

Per frame (on the reading thread, in the files' own codes): missing frame, non-finite pixels, change outside
the matte. Per face of a rendered track: not rendered (empty matte or comp = plate), output face lost,
landmark jitter against the plate's (both measured from the same ROI), flicker of the change and the matte
sliding (both against the plate's DIS flow, on the face crop shrunk to ``work_size``), identity drift (dlib,
every ``identity_every`` frames in the pass and then on every frame flagged otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceplate.analysis.faces import Landmarker, interocular, roi_from_landmarks
from faceplate.analysis.identity import Embedder, distance
from faceplate.cpu import usable_cores
from faceplate.errors import ConfigError, PlateError
from faceplate.export import select_tracks
from faceplate.geometry import Roi, iou
from faceplate.media import colour
from faceplate.media.frames import FrameRange
from faceplate.media.plate import open_plate
from faceplate.media.prefetch import prefetch
from faceplate.qc import measures as m
from faceplate.qc.config import QcConfig
from faceplate.qc.files import check_dir, report_dir
from faceplate.qc.inputs import RenderFrames, matte_source, read_record, shot_of
from faceplate.render.tracks import ColourPath
from faceplate.store import FaceRow, ShotStore, face_box

F32 = NDArray[np.float32]
STEPS = ("jitter", "flicker", "matte_edge")  # frame-to-frame measures, localised by measures.localise
STICKY_IOU = 0.85  # a track's work box is kept while the face's box overlaps it this much
ProgressFn = Callable[[int, int], None]


@dataclass
class FaceQc:
    """One rendered face in one frame: its measures (None: not measurable) and what the pass kept of it."""

    track: int
    box: m.Box  # crop box (plate px): the landmark ROI's box
    iod: float
    values: dict[str, float | None] = field(default_factory=dict)
    why: str | None = None  # not rendered: "empty matte" / "comp = plate"
    landmarks: F32 | None = None  # the output's landmarks (plate px), None when no face was found there
    plate_found: bool = True  # the plate's face found again from the same ROI (else nothing could be checked)
    descriptor: F32 | None = None


@dataclass
class FrameQc:
    """One frame: frame-wide measures, its faces and its flags ({flag, track, value})."""

    frame: int
    missing: bool = False
    nonfinite: int = 0
    outside: int = 0
    faces: dict[int, FaceQc] = field(default_factory=dict)
    flags: list[dict[str, Any]] = field(default_factory=list)

    def flag(self, name: str, track: int | None, value: float | None, note: str | None = None) -> None:
        entry = {"flag": name, "track": track, "value": None if value is None else round(value, 4)}
        self.flags.append(entry if note is None else {**entry, "note": note})


@dataclass
class QcResult:
    """A QC pass: what was checked and every frame's measures and flags."""

    render: str
    plate: str
    shot: Path
    tracks: list[int]
    frames: list[FrameQc]
    seconds: float
    reference: str | None = None
    first_frame: int = 0  # the plate's (video plates number frames from it)
    comp: RenderFrames | None = None  # the readers, for the report's thumbnails
    matte: RenderFrames | None = None

    @property
    def flag_names(self) -> set[str]:
        return {f["flag"] for fr in self.frames for f in fr.flags}

    @property
    def fps(self) -> float:
        return len(self.frames) / self.seconds if self.seconds > 0 else 0.0


class Display:
    """Float crops in the plate's colour space → uint8 sRGB-like views for the face models."""

    def __init__(self, colorspace: str) -> None:
        self._path = ColourPath(colorspace)  # the render path's plate → analysis space

    def __call__(self, rgb: F32) -> NDArray[np.uint8]:
        img = np.ascontiguousarray(rgb[..., :3], np.float32)
        if not np.isfinite(img.sum()):
            img = np.nan_to_num(img, nan=0.0, posinf=1.0, neginf=0.0)
        return colour.to_uint8(self._path.encode(img))


@dataclass
class _Held:
    """The previous frame: full-size plate, comp, matte, and per track (plate landmarks, output landmarks)."""

    frame: int
    plate: F32
    comp: F32
    matte: F32
    marks: dict[int, tuple[F32 | None, F32 | None]]


class QcPass:
    """The models and state of one pass (landmarker, display view) and the per-face measures."""

    def __init__(self, cfg: QcConfig, colorspace: str) -> None:
        self.cfg = cfg
        self.display = Display(colorspace)
        self.landmarker = Landmarker()
        # per track: (frame, work box, its shrunk plate, comp, matte): the next frame reuses them while the
        # face stays in that box (STICKY_IOU), instead of cutting and shrinking the previous frame again
        self._small: dict[int, tuple[int, m.Box, list[F32]]] = {}

    def close(self) -> None:
        self.landmarker.close()

    def marks(self, rgb: F32, box: m.Box, roi: Roi) -> F32 | None:
        """Landmarks (478, 3, plate px) of the face in ``roi`` on frame ``rgb``, measured on its ``box`` crop."""
        x0, y0 = box[0], box[1]
        lm = self.landmarker(self.display(m.unit_crop(rgb, box)), Roi(roi.cx - x0, roi.cy - y0, roi.size, roi.angle))
        if lm is None:
            return None
        lm[:, 0] += x0
        lm[:, 1] += y0
        return lm

    def face(self, row: FaceRow, plate: F32, comp: F32, matte: F32, held: _Held | None) -> tuple[FaceQc, F32 | None]:
        """Measures of one face; returns it and the plate's landmarks re-measured the output's way."""
        h, w = plate.shape[:2]
        roi = roi_from_landmarks(row.best)
        box = m.clip_box(roi.box(), w, h)
        fq = FaceQc(row.track, box, interocular(row.best))
        mesh = m.clip_box(face_box(row.best), w, h)
        crops = (m.unit_crop(plate, mesh), m.unit_crop(comp, mesh)[..., :3], m.unit_crop(matte, mesh))
        fq.why = m.not_rendered(*crops, self.cfg.render_tolerance)
        fq.landmarks = self.marks(comp, box, roi)
        plate_lm = self.marks(plate, box, roi)
        fq.plate_found = plate_lm is not None
        fq.values = dict.fromkeys((*STEPS, "matte_change"))
        if held is not None and row.track in held.marks:
            fq.values.update(self.steps(fq, row.frame, plate, comp, matte, held, plate_lm))
        return fq, plate_lm

    def work_box(self, track: int, frame: int, box: m.Box) -> m.Box:
        """The box the frame-to-frame measures use: the track's previous one while it still fits the face."""
        prev = self._small.get(track)
        if (
            prev is not None
            and prev[0] == frame - 1
            and iou(np.array(prev[1], float), np.array(box, float)) >= STICKY_IOU
        ):
            return prev[1]
        return box

    def steps(
        self, fq: FaceQc, frame: int, plate: F32, comp: F32, matte: F32, held: _Held, plate_lm: F32 | None
    ) -> dict[str, float | None]:
        """Jitter, flicker and matte edge motion from the previous frame into this one, on the work box."""
        work = self.work_box(fq.track, frame, fq.box)
        x0, y0, x1, y1 = work
        s = min(1.0, self.cfg.work_size / max(x1 - x0, y1 - y0))
        now = [m.shrink(m.crop(a, work), s) for a in (plate, comp, matte)]
        now[1] = now[1][..., :3]  # R, G, B of an RGBA comp
        kept = self._small.get(fq.track)
        if kept is not None and kept[0] == frame - 1 and kept[1] == work:
            before = kept[2]
        else:
            before = [m.shrink(m.crop(a, work), s) for a in (held.plate, held.comp, held.matte)]
            before[1] = before[1][..., :3]
        self._small[fq.track] = (frame, work, now)
        flow = m.plate_flow(m.gray8(self.display_like(now[0])), m.gray8(self.display_like(before[0])))
        weight = np.maximum(now[2], m.warp(before[2], flow))
        out: dict[str, float | None] = {"flicker": m.flicker(now[0], before[0], now[1], before[1], weight, flow)}
        pct = 100.0 / s / max(fq.iod, 1e-6)  # working px → % of the eye distance
        slide, edge = m.matte_slide(now[2], before[2], flow), m.matte_edge_motion(now[2], before[2], flow)
        out["matte_edge"] = None if slide is None else slide * pct
        out["matte_change"] = None if edge is None else edge * pct  # every edge, holes too: reported only
        pl_prev, out_prev = held.marks[fq.track]
        if plate_lm is not None and pl_prev is not None and fq.landmarks is not None and out_prev is not None:
            out["jitter"] = m.landmark_jitter(fq.landmarks, out_prev, plate_lm, pl_prev, fq.iod)
        return out

    def display_like(self, rgb: F32) -> F32:
        """A float crop viewed as display values in [0, 1] (for the flow's grey image)."""
        return np.asarray(self.display(rgb), np.float32) / np.float32(255.0)


def _frames(
    plate_path: str, cs: str | None, first: int, render: RenderFrames, matte: RenderFrames | None, rng: FrameRange
) -> Iterator[tuple[int, F32, F32 | None, F32 | None]]:
    """(frame, plate (H, W, 3), comp (H, W, 3 or 4) or None, matte (H, W) or None) of ``rng`` as decoded
    (codes, half or float: measures.unit_float makes floats of the crops that need them)."""
    workers = usable_cores()
    mattes = matte.iterate(rng, workers) if matte is not None else repeat((0, None))
    with open_plate(plate_path, colorspace=cs, first_frame=first) as plate:
        frames = plate.frames(rng, native=True)
        for (f, pl), (_, cm), (_, mt) in zip(frames, render.iterate(rng, workers), mattes, strict=False):
            if cm is None:
                yield f, pl, None, None
                continue
            if matte is None:
                alpha = np.ascontiguousarray(cm[..., 3]) if cm.shape[2] > 3 else None
            else:
                alpha = None if mt is None else np.ascontiguousarray(mt[..., 0])
            yield f, pl, cm, alpha


@dataclass(frozen=True)
class _Loaded:
    """One frame as read, with its frame-wide measures (made on the reading thread)."""

    frame: int
    plate: F32
    comp: F32 | None
    matte: F32 | None
    nonfinite: int = 0
    outside: int = 0


def _whole_frames(cfg: QcConfig, is_float: bool, frames: Iterator[tuple[int, F32, F32 | None, F32 | None]]
                  ) -> Iterator[_Loaded]:  # fmt: skip
    """Frames with their non-finite pixels and change outside the matte counted."""
    for f, pl, cm, mt in frames:
        if cm is None or mt is None:
            yield _Loaded(f, pl, None, None)
            continue
        bad = m.nonfinite(cm) + m.nonfinite(mt) if is_float else 0
        yield _Loaded(f, pl, cm, mt, bad, m.outside_matte_codes(pl, cm, mt, cfg.outside_tolerance))


def _measure(qp: QcPass, rows_of: Callable[[int], list[FaceRow]], it: Iterator[_Loaded], progress: ProgressFn | None,
             total: int, first: int, every: int) -> list[FrameQc]:  # fmt: skip
    """The pass: every frame's per-face measures, identity on every ``every``-th frame from ``first`` (the
    flagged ones get theirs in :func:`_identity`)."""
    frames: list[FrameQc] = []
    held: _Held | None = None
    for ld in it:
        fr = FrameQc(ld.frame, nonfinite=ld.nonfinite, outside=ld.outside)
        frames.append(fr)
        if ld.comp is None or ld.matte is None:
            fr.missing, held = True, None
            if progress:
                progress(len(frames), total)
            continue
        marks: dict[int, tuple[F32 | None, F32 | None]] = {}
        before = held if held is not None and held.frame == ld.frame - 1 else None
        for row in rows_of(ld.frame):  # the comp may be RGBA: crops keep R, G, B once cut and widened
            fq, plate_lm = qp.face(row, ld.plate, ld.comp, ld.matte, before)
            fr.faces[row.track] = fq
            marks[row.track] = (plate_lm, fq.landmarks)
        if (ld.frame - first) % every == 0:  # the sampled identity, while the frame is here
            for fq in fr.faces.values():
                if fq.landmarks is not None:
                    _describe(qp, ld.comp, fq)
        held = _Held(ld.frame, ld.plate, ld.comp, ld.matte, marks)
        if progress:
            progress(len(frames), total)
    return frames


def _cheap_flags(cfg: QcConfig, frames: list[FrameQc], tracks: list[int]) -> None:
    """Every flag but drift, on each frame."""
    for fr in frames:
        if fr.missing:
            fr.flag("missing_frame", None, None, "comp or matte missing or unreadable")
            continue
        if fr.nonfinite:
            fr.flag("nonfinite", None, fr.nonfinite)
        if fr.outside > cfg.outside_pixels:
            fr.flag("outside_matte", None, fr.outside)
        for t, fq in fr.faces.items():
            if fq.why is not None:
                fr.flag("not_rendered", t, None, fq.why)
            elif fq.landmarks is None:
                why = "no face found in the output" if fq.plate_found else "not found in the plate either: unchecked"
                fr.flag("face_lost", t, None, why)
    floors = {"jitter": cfg.jitter_px, "matte_edge": cfg.matte_edge_px}  # px: below them a small face's noise
    for t in tracks:
        for name in STEPS:
            values = [fr.faces[t].values.get(name) if t in fr.faces else None for fr in frames]
            steps = [_above_floor(v, fr.faces[t].iod, floors.get(name, 0.0)) if t in fr.faces else None
                     for v, fr in zip(values, frames, strict=True)]  # fmt: skip
            for fr, bad, v in zip(frames, m.localise(steps, getattr(cfg, name)), values, strict=True):
                if bad and v is not None and not any(f["track"] == t and f["flag"] == "not_rendered" for f in fr.flags):
                    fr.flag(name, t, v)


def _above_floor(pct: float | None, iod: float, floor_px: float) -> float | None:
    """A step in % of the eye distance, or 0 when it is under ``floor_px`` plate pixels."""
    return None if pct is None else (pct if pct * iod / 100.0 > floor_px else 0.0)


def _describe(qp: QcPass, img: NDArray[Any], fq: FaceQc) -> None:
    """The dlib descriptor of the output face ``fq`` on comp frame ``img`` (its landmarks found there)."""
    assert fq.landmarks is not None
    lm = fq.landmarks.copy()
    lm[:, 0] -= fq.box[0]
    lm[:, 1] -= fq.box[1]
    fq.descriptor = _embedder()(qp.display(m.unit_crop(img, fq.box)), lm)


def _identity(qp: QcPass, render: RenderFrames, frames: list[FrameQc]) -> None:
    """Descriptors of the faces of flagged frames that the pass did not describe (their frames read again)."""
    for fr in frames:
        todo = [fq for fq in fr.faces.values() if fq.landmarks is not None and fq.descriptor is None]
        if not todo or not fr.flags:
            continue
        img = render.read(fr.frame)
        if img is not None:
            for fq in todo:
                _describe(qp, img, fq)


def _drift(cfg: QcConfig, store: ShotStore, frames: list[FrameQc], tracks: list[int], ref: F32 | None) -> None:
    """Distances of each descriptor to the reference (``ref``, else the plate track's median) and to the
    output's own median; flags above the thresholds."""
    for t in tracks:
        faces = [(fr, fr.faces[t]) for fr in frames if t in fr.faces and fr.faces[t].descriptor is not None]
        plate = [v for _, _, v in store.embeddings(t)]
        target = ref if ref is not None else (np.median(plate, axis=0) if plate else None)
        own = np.median([fq.descriptor for _, fq in faces if fq.descriptor is not None], axis=0) if faces else None
        for fr, fq in faces:
            assert fq.descriptor is not None
            for name, to in (("drift_reference", target), ("drift_median", own)):
                if to is None:
                    continue
                d = distance(fq.descriptor, np.asarray(to, np.float32))
                fq.values[name] = d
                if d > getattr(cfg, name):
                    fr.flag(name, t, d)


def run_qc(cfg: QcConfig, progress: ProgressFn | None = None) -> QcResult:
    """Measure ``cfg.render`` against its plate and shot and flag what is past the thresholds."""
    t0 = time.perf_counter()
    record = read_record(cfg.render)
    shot = shot_of(cfg.render, cfg.shot, record)
    check_dir(report_dir(cfg.out, cfg.render, shot), cfg.render, cfg.overwrite)  # refused before the pass
    with ShotStore.open(shot) as store:
        info = store.plate
        plate_path = str(record["plate"]) if record and record.get("plate") else info.path
        cs = record.get("colorspace") if record else None
        face = record.get("face") if record else None
        ids = select_tracks(store, record.get("track") if record else None, None if face is None else Path(face),
                            allow_all=True)  # fmt: skip
        first = info.first_frame if cfg.first_frame is None else cfg.first_frame
        render = RenderFrames(cfg.render, info.colorspace, first)
        matte = matte_source(render, cfg.matte)
        if render.size != (info.height, info.width):
            size = f"{render.size[1]}x{render.size[0]}"
            raise ConfigError(f"{cfg.render} is {size}, the plate {info.width}x{info.height}")
        rng = render.frames.clip(info.frames)
        if len(rng) <= 0:
            raise ConfigError(f"{cfg.render}'s frames {render.frames} are outside the plate's {info.frames}")
        ref = _reference(cfg.reference)
        qp = QcPass(cfg, info.colorspace)
        try:
            rows_of = lambda f: [r for r in store.faces_in_frame(f) if r.track in ids]  # noqa: E731
            try:
                read = _frames(plate_path, cs, info.first_frame, render, matte, rng)
                it = prefetch(_whole_frames(cfg, render.is_float, read), depth=3)
                frames = _measure(qp, rows_of, it, progress, len(rng), rng.first, cfg.identity_every)
            except PlateError as err:
                raise ConfigError(f"the plate of {cfg.render} cannot be read: {err}") from None
            _cheap_flags(cfg, frames, ids)
            _identity(qp, render, frames)
            _drift(cfg, store, frames, ids, ref)
        finally:
            qp.close()
    ref_name = None if cfg.reference is None else str(cfg.reference)
    return QcResult(cfg.render, plate_path, shot, ids, frames, time.perf_counter() - t0, ref_name, info.first_frame,
                    render, matte)  # fmt: skip


@cache
def _embedder() -> Embedder:
    """One dlib embedder per process (its models load in ~0.2 s; QC passes in a row share it)."""
    return Embedder()


def _reference(path: Path | None) -> F32 | None:
    """The descriptor of the ``--reference`` photo."""
    if path is None:
        return None
    if not path.is_file():
        raise ConfigError(f"--reference {path} does not exist; give a photo of the person")
    from faceplate.review import reference_face

    return reference_face(path).descriptor
