"""Per-track render context and aligned faces: the plate side of the effect contract.

A track's working size and effect context come from its measured faces of its first second, so every
render path (streamed, two-pass, any farm chunk) gives a frame the same context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceplate.align import align_matrix, plate_crop, to_aligned
from faceplate.analysis.faces import interocular
from faceplate.analysis.smoothing import lookahead
from faceplate.effects.base import AlignedFace, Effect
from faceplate.geometry import F64
from faceplate.media import colour
from faceplate.media.frames import FrameRange
from faceplate.media.plate import Plate
from faceplate.ops.eyewear import eyewear_matte
from faceplate.ops.glasses import glasses_matte, track_wears_glasses, wears_glasses
from faceplate.ops.occluders import track_occluders
from faceplate.store import FaceRow, ShotStore

F32 = NDArray[np.float32]
SAMPLES_PER_TRACK = 6


class ColourPath:
    """Plate space ↔ the encoded space effects work in (identity for video and sRGB plates)."""

    def __init__(self, plate_space: str) -> None:
        self.identity = colour.is_display_like(plate_space)
        if not self.identity:
            self._to = colour.converter(plate_space, colour.ANALYSIS_SPACE)
            self._back = colour.converter(colour.ANALYSIS_SPACE, plate_space)

    def encode(self, rgb: F32) -> F32:
        """Plate-space float RGB (H, W, 3) → the effects' encoded RGB."""
        return rgb if self.identity else _converted(rgb, self._to)

    def decode(self, rgb: F32) -> F32:
        """The effects' encoded RGB (H, W, 3) → plate-space float RGB."""
        return rgb if self.identity else _converted(rgb, self._back)


def _converted(rgb: F32, convert: Callable[[F32], None]) -> F32:
    """A float32 copy of ``rgb`` run through the in-place OCIO ``convert``."""
    out = np.ascontiguousarray(rgb, np.float32).copy()
    convert(out)
    return out


@dataclass
class TrackContext:
    """One track's working resolution (aligned px), its effect context (``Effect.prepare``) and the
    occluders held out of every frame's matte (R, R) in aligned space (glasses; None: none)."""

    id: int
    res: int
    context: Any
    held_out: F32 | None = None


def aligned_face(
    img: NDArray[Any], face: FaceRow, res: int, ftype: str, col: ColourPath
) -> tuple[AlignedFace, F32, F64]:
    """(face for the effect, the plate-space float crop, plate→crop matrix) of one face of a plate frame.

    ``img`` is a frame as decoded (uint8, uint16 or float32 RGB (H, W, 3) in plate space). Non-finite plate
    pixels (NaN/Inf in EXR) are filled from their neighbours in the crop, so they cannot spread through the effect.
    """
    lm = face.best
    m = align_matrix(lm, res, ftype)
    crop = plate_crop(img, m, res)
    alm = to_aligned(m, lm).astype(np.float32)
    return AlignedFace(face.frame, face.track, col.encode(crop), alm, interocular(alm)), crop, m


def sample_picks(early: list[FaceRow]) -> list[FaceRow]:
    """Up to SAMPLES_PER_TRACK faces spread evenly over ``early`` (a track's measured faces of its first second)."""
    return [early[i] for i in np.linspace(0, len(early) - 1, min(SAMPLES_PER_TRACK, len(early))).astype(int)]


def unseen_glasses(samples: list[AlignedFace]) -> bool:
    """Whether a track wears glasses by its sample faces' bridges and rims (:func:`track_wears_glasses`)."""
    return track_wears_glasses([wears_glasses(s.image, s.landmarks, s.iod) for s in samples])


def measured(face: AlignedFace, row: FaceRow, m: F64) -> AlignedFace:
    """``face`` (aligned by ``row``'s smoothed landmarks, plate→crop matrix ``m``) with the landmarks measured
    on that frame instead: on a fast head the smoothed ones may trail the face (d12: up to 0.05 eye distances),
    the measured ones lie on it (what the bridge and rims are read against)."""
    return replace(face, landmarks=to_aligned(m, row.landmarks).astype(np.float32))


def held_out(
    samples: list[AlignedFace], glasses: bool | None = None, seen: list[AlignedFace] | None = None
) -> F32 | None:
    """The occluder matte (R, R) a track holds out, from its sample faces (aligned alike), or None.

    ``glasses``: None finds them: the frames found on the samples (:func:`glasses_matte`: dark ones, or clear
    or thin ones fitted as lenses from their bridge and rims; :func:`track_occluders`), or, where it finds none
    but the bridge and rims of
    ``seen`` (the samples with their measured landmarks, default ``samples``) say the track wears glasses,
    where glasses lie on the mesh (:func:`eyewear_matte`, the union over the samples); True holds out that
    mesh region as well as what the finder sees; False holds out none.
    """
    if glasses is False:
        return None
    found = track_occluders([glasses_matte(s.image, s.landmarks, s.iod) for s in samples],
                            float(np.median([s.iod for s in samples])))  # fmt: skip
    if glasses is None and (found is not None or not unseen_glasses(seen or samples)):
        return found
    shape = (samples[0].image.shape[0], samples[0].image.shape[1])
    mesh = np.max([eyewear_matte(s.landmarks, shape, s.iod) for s in samples], axis=0)
    return mesh if found is None else np.maximum(mesh, found)


def track_context(
    effect: Effect,
    col: ColourPath,
    track: int,
    early: list[FaceRow],
    images: dict[int, NDArray[Any]],
    identity: F32 | None = None,
    glasses: bool | None = None,
) -> TrackContext:
    """A track's working resolution and effect context from its measured faces in its first second.

    ``early`` in frame order; ``images`` the decoded plate frames of at least ``sample_picks(early)``. Both
    render paths pass the same faces, so a streamed first render and a re-render of the analysed shot agree.
    ``glasses``: as :func:`held_out` (None: found; True: the track wears glasses; False: none held out).
    """
    res = effect.resolution(float(np.median([interocular(f.best) for f in early])))
    picks = sample_picks(early)
    aligned = [aligned_face(images[f.frame], f, res, effect.face_type, col) for f in picks]
    samples = [a[0] for a in aligned]
    seen = [measured(a[0], f, a[2]) for a, f in zip(aligned, picks, strict=True)]
    held = held_out(samples, glasses, seen) if effect.holds_occluders else None
    return TrackContext(track, res, effect.prepare(samples, identity), held)


Samples = tuple[list[FaceRow], dict[int, NDArray[Any]], F32 | None]  # early faces, their sample frames, identity


def track_samples(store: ShotStore, plate: Plate, track: int) -> Samples:
    """What :func:`track_context` needs of a track: its measured faces in its first second, their decoded
    sample frames (:func:`sample_picks`) and its mean identity vector (None without embeddings)."""
    faces = [f for f in store.track_faces(track) if f.source != "interp"]
    early = [f for f in faces if f.frame < faces[0].frame + lookahead(float(plate.info.fps))]
    picks = {f.frame for f in sample_picks(early)}
    decoded = plate.frames(FrameRange(early[0].frame, early[-1].frame), native=True)
    vectors = [v for _, _, v in store.embeddings(track)]
    identity = np.mean(vectors, axis=0).astype(np.float32) if vectors else None
    return early, {f: img for f, img in decoded if f in picks}, identity


def prepare_tracks(
    store: ShotStore, plate: Plate, effect: Effect, ids: list[int], col: ColourPath, glasses: bool | None = None
) -> dict[int, TrackContext]:
    """Working resolution and effect context per track, from sample frames of its first second
    (``glasses`` as :func:`held_out`, for every track)."""
    return {t: track_context(effect, col, t, *track_samples(store, plate, t), glasses) for t in ids}
