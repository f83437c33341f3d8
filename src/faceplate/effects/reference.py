"""Reference de-age without training: procedural de-age, then the skin of younger stills of the same actor.

``prepare`` finds the face in each reference still, refuses another person (dlib distance to the track's
identity at or above ``SAME_PERSON_ACROSS_AGE``, calibrated on real age gaps), aligns the stills at the
track's working resolution and measures their skin (:func:`faceplate.ops.texture_transfer.skin_stats`)
in the canonical face's space, averaged over the stills. ``apply`` runs :class:`DeageEffect` and moves
the result's skin tone and wrinkle-band energy towards the stills' (warped onto the frame's landmarks);
pores stay as shot and wrinkles are never added.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from faceplate.align import align_image, align_matrix, template_in_crop, to_aligned
from faceplate.analysis.faces import DETECTORS, Landmarker, interocular, landmark_box
from faceplate.analysis.identity import MIN_EMBED_IOD, SAME_PERSON_ACROSS_AGE, Embedder, distance
from faceplate.effects.base import EFFECTS, F32, AlignedFace, Effect, EffectResult, file_digest
from faceplate.effects.beauty import BeautyEffect, SkinMatte
from faceplate.effects.deage import DeageContext, DeageEffect, DeageSettings, deage_matte, lift_field
from faceplate.errors import ConfigError, FaceNotFoundError, PlateError
from faceplate.landmarks import MESH_POINTS
from faceplate.media.plate import open_plate
from faceplate.ops.filters import gauss
from faceplate.ops.regions import feather, skin_region
from faceplate.ops.skin import SkinModel
from faceplate.ops.texture_transfer import (
    TransferSettings,
    average_stats,
    match_blur,
    mesh_triangles,
    piecewise_affine_map,
    remap,
    skin_stats,
    transfer,
)


@dataclass(frozen=True)
class ReferenceStill:
    """The main face of a reference still: the image (H, W, 3) uint8 RGB, landmarks (478, 3), descriptor (128,)."""

    path: str
    rgb: np.ndarray
    landmarks: F32
    descriptor: F32


def load_stills(paths: tuple[str, ...]) -> list[ReferenceStill]:
    """Read each still and find its largest face; ConfigError / FaceNotFoundError (one line) when one cannot."""
    detect, landmarker, embed = DETECTORS.get("mediapipe")(1, 0.5), Landmarker(), Embedder()
    out = []
    try:
        for p in paths:
            if not Path(p).is_file():
                raise ConfigError(f"reference still {p} does not exist (--reference)")
            try:
                with open_plate(p) as plate:
                    rgb = np.asarray(plate.read(plate.info.first_frame, display=True), np.uint8)
            except PlateError as err:
                raise ConfigError(f"reference still {p} cannot be read: {err}") from None
            faces = [lm for d in detect(rgb) if (lm := landmarker(rgb, d.roi())) is not None]
            if not faces:
                raise FaceNotFoundError(f"no face found in the reference still {p}; give a still showing the actor")
            lm = max(faces, key=lambda f: float(np.prod(np.diff(landmark_box(f).reshape(2, 2), axis=0))))
            if interocular(lm) < MIN_EMBED_IOD:
                raise FaceNotFoundError(f"the face in the reference still {p} is too small; give a closer still")
            out.append(ReferenceStill(p, rgb, lm, embed(rgb, lm)))
    finally:
        landmarker.close()
    return out


def check_references(stills: list[ReferenceStill], identity: F32) -> dict[str, float]:
    """dlib distance of each still to the plate's actor; ConfigError when one shows another person."""
    dists = {s.path: distance(s.descriptor, identity) for s in stills}
    worst = max(dists, key=lambda p: dists[p])
    if dists[worst] >= SAME_PERSON_ACROSS_AGE:
        raise ConfigError(
            f"the reference {worst} shows another person than the plate's face (dlib distance "
            f"{dists[worst]:.2f} ≥ {SAME_PERSON_ACROSS_AGE}, the same-actor-across-age limit); give younger "
            "stills of this actor, or choose the face with --face/--track"
        )
    return dists


def sample_identity(samples: list[AlignedFace]) -> F32:
    """Mean dlib descriptor of sample faces (aligned crops); FaceNotFoundError when they are too small."""
    embed = Embedder()
    vecs = [embed(np.round(np.clip(f.image, 0, 1) * 255).astype(np.uint8), f.landmarks)
            for f in samples if f.iod >= MIN_EMBED_IOD]  # fmt: skip
    if not vecs:
        raise FaceNotFoundError("the plate's face is too small to identify; cannot check the reference")
    return np.mean(vecs, axis=0).astype(np.float32)


def skin_weight(face: AlignedFace, model: SkinModel | None) -> F32:
    """Where skin statistics are measured and changed (R, R): the mesh's skin area, feathered, times a loose
    skin-colour likelihood (hair strands, beards and shadows off the skin's colour drop out)."""
    shape = (int(face.image.shape[0]), int(face.image.shape[1]))
    w = feather(skin_region(face.landmarks, shape), 0.035 * face.iod)
    if model is not None:
        w = w * gauss(replace(model, near=3.0, far=6.0).likelihood(face.image), 0.03 * face.iod)
    return np.asarray(w, np.float32)


@dataclass
class ReferenceContext:
    """A track's procedural context and the stills' skin statistics in the canonical face's crop space:
    ``stats`` (R, R, STATS), ``weight`` (R, R) coverage, ``points`` (468, 2) the canonical mesh, ``tris``
    its triangles, ``sigma`` the blur energies were measured after, ``distances`` per still."""

    deage: DeageContext
    stats: F32
    weight: F32
    points: np.ndarray
    tris: np.ndarray
    sigma: float
    distances: dict[str, float]


@EFFECTS.register("deage_reference")
@dataclass(frozen=True)
class ReferenceDeageEffect(Effect):
    """Procedural de-age, then skin tone and wrinkle energy taken from younger stills of the same actor."""

    name: ClassVar[str] = "deage_reference"
    streams: ClassVar[bool] = False  # the gate wants the track's identity from the analysed shot
    settings: DeageSettings = field(default_factory=DeageSettings)
    references: tuple[str, ...] = ()
    transfer: TransferSettings = field(default_factory=TransferSettings)
    matte: SkinMatte = field(default_factory=deage_matte)

    def __post_init__(self) -> None:
        if not self.references:
            raise ConfigError("give at least one reference still (--reference)")

    @property
    def face_type(self) -> str:  # type: ignore[override]
        return self._deage().face_type

    def resolution(self, plate_iod: float) -> int:
        return self._deage().resolution(plate_iod)

    def record(self) -> dict[str, Any]:
        """Settings plus a digest of every reference still: a resume refuses changed references."""
        return {**super().record(), "references": {p: file_digest(Path(p)) for p in self.references}}

    def _deage(self) -> DeageEffect:
        return DeageEffect(self.settings, self.matte)

    def retouch_effect(self) -> BeautyEffect:
        return BeautyEffect(self.settings.retouch(), self.matte)

    def prepare(self, samples: list[AlignedFace], identity: np.ndarray | None = None) -> ReferenceContext:
        stills = load_stills(self.references)
        dists = check_references(stills, sample_identity(samples) if identity is None else identity)
        res = int(samples[0].image.shape[0])
        points = template_in_crop(res, self.face_type)[:MESH_POINTS]
        tris = mesh_triangles(points)
        work_iod = float(np.median([f.iod for f in samples]))
        crops = [self._aligned(s, res) for s in stills]
        sigmas = [match_blur(interocular(s.landmarks), work_iod) for s in stills]
        sigma = max(sigmas)
        stats, weights = [], []
        for (face, skin), sg in zip(crops, sigmas, strict=True):
            st = skin_stats(face.image, skin, face.iod, float(np.sqrt(sigma**2 - sg**2)))
            where, valid = piecewise_affine_map(points, face.landmarks[:MESH_POINTS], tris, (res, res))
            stats.append(remap(st, where))
            weights.append(remap(skin, where) * feather(valid, 0.05 * work_iod))  # no edge where the mesh ends
        mean, cover = average_stats(stats, weights)
        return ReferenceContext(self._deage().prepare(samples, identity), mean, cover, points, tris, sigma, dists)

    def _aligned(self, still: ReferenceStill, res: int) -> tuple[AlignedFace, F32]:
        """A still aligned like the plate's faces, and its skin matte (its own skin-colour model)."""
        m = align_matrix(still.landmarks, res, self.face_type)
        img = align_image(still.rgb, m, res, cv2.INTER_AREA).astype(np.float32) / 255.0
        lm = to_aligned(m, still.landmarks).astype(np.float32)
        face = AlignedFace(0, 0, img, lm, interocular(lm))
        return face, skin_weight(face, self.retouch_effect().prepare([face]))

    def apply(self, face: AlignedFace, context: Any) -> EffectResult:
        ctx: ReferenceContext = context
        done = self._deage().apply(face, ctx.deage)
        shape = (face.image.shape[0], face.image.shape[1])
        fld = lift_field(face.landmarks, shape, self.settings, ctx.deage.jowls)
        lm = face.landmarks.copy()
        xi = np.clip(np.round(lm[:, 0]).astype(int), 0, shape[1] - 1)
        yi = np.clip(np.round(lm[:, 1]).astype(int), 0, shape[0] - 1)
        lm[:, :2] += fld[yi, xi]  # the de-aged face's landmarks (as DeageEffect moves them)
        lifted = AlignedFace(face.frame, face.track, done.image, lm, face.iod)
        skin = skin_weight(lifted, ctx.deage.skin)
        where, valid = piecewise_affine_map(lm[:MESH_POINTS], ctx.points, ctx.tris, shape)
        ref = remap(ctx.stats, where)
        cover = np.clip(remap(ctx.weight, where) / 0.5, 0, 1) * valid  # the stats fill in: half coverage is enough
        out = transfer(done.image, skin, ref, cover, face.iod, ctx.sigma, self.transfer)
        matte = np.maximum(done.matte, skin * cover)  # smooth: no edge where the transfer fades out
        return EffectResult(out, np.clip(matte, 0, 1).astype(np.float32))
