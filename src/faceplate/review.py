"""Look at a shot: tracks with frame ranges and identities, a contact sheet, pick a person by photo."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.align import align_image, align_matrix
from faceplate.analysis.faces import DETECTORS, Landmarker, landmark_box
from faceplate.analysis.identity import SAME_PERSON, Embedder, distance
from faceplate.errors import ConfigError, FaceNotFoundError, PlateError, WriterError
from faceplate.fileio import atomic_write_bytes
from faceplate.media.plate import Plate, open_plate
from faceplate.store import F32, FaceRow, ShotStore


@dataclass(frozen=True)
class ReferenceFace:
    """The largest face of a reference photo: landmarks (478, 3) and dlib descriptor (128,)."""

    path: str
    landmarks: F32
    descriptor: F32


def reference_face(path: str | os.PathLike[str]) -> ReferenceFace:
    """Analyse a reference image ("the actor in this photo"); FaceNotFoundError when it shows no face."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"--face {p} is a folder; give one reference image of the person (e.g. --face actor.jpg)")
    if not p.is_file():
        raise ConfigError(f"reference image {p} does not exist (--face)")
    try:
        with open_plate(path) as plate:
            rgb = plate.read(plate.info.first_frame, display=True)
    except PlateError as err:
        raise ConfigError(f"reference image {p} cannot be read: {err}") from None
    detect = DETECTORS.get("mediapipe")(1, 0.5)
    landmarker = Landmarker()
    faces = []
    for det in detect(rgb):
        lm = landmarker(rgb, det.roi())
        if lm is not None:
            b = landmark_box(lm)
            faces.append(((b[2] - b[0]) * (b[3] - b[1]), lm))
    landmarker.close()
    if not faces:
        raise FaceNotFoundError(f"no face found in the reference image {path}")
    lm = max(faces, key=lambda f: f[0])[1]
    return ReferenceFace(str(path), lm, Embedder()(rgb, lm))


def track_descriptors(store: ShotStore) -> dict[int, F32]:
    """Mean dlib descriptor per track."""
    by: dict[int, list[F32]] = {}
    for t, _, v in store.embeddings():
        by.setdefault(t, []).append(v)
    return {t: np.mean(v, axis=0).astype(np.float32) for t, v in by.items()}


def match_reference(store: ShotStore, ref: ReferenceFace, threshold: float = SAME_PERSON) -> tuple[list[int], float]:
    """Tracks of the person in ``ref``: the identity whose closest track is nearest; (track ids, distance).

    FaceNotFoundError when nobody in the shot is within ``threshold`` (dlib distance).
    """
    desc = track_descriptors(store)
    if not desc:
        raise FaceNotFoundError(f"{store.path.parent} has no identity data; run `faceplate extract` first")
    dists = {t: distance(v, ref.descriptor) for t, v in desc.items()}
    best = min(dists, key=lambda t: dists[t])
    if dists[best] >= threshold:
        raise FaceNotFoundError(
            f"nobody in {store.path.parent} matches the face in {ref.path} "
            f"(closest: track {best} at distance {dists[best]:.2f}, same person needs < {threshold})"
        )
    tracks = {t.id: t for t in store.tracks()}
    ident = tracks[best].identity
    same = [t for t in tracks.values() if ident is not None and t.identity == ident and dists.get(t.id, 9) < threshold]
    return sorted({best, *[t.id for t in same]}), dists[best]


def open_shot_plate(store: ShotStore, plate_path: str | None = None) -> Plate:
    """Reopen the plate a shot was extracted from (or ``plate_path`` if it moved)."""
    info = store.plate
    return open_plate(plate_path or info.path, colorspace=info.colorspace, first_frame=info.first_frame)


def representative(faces: list[FaceRow]) -> FaceRow:
    """The detector-confirmed face nearest the middle of the track (else the middle face)."""
    measured = [f for f in faces if f.source == "detect"] or [f for f in faces if f.source != "interp"] or faces
    mid = (faces[0].frame + faces[-1].frame) / 2
    return min(measured, key=lambda f: abs(f.frame - mid))


def contact_sheet(store: ShotStore, out: Path, tile: int = 192, plate_path: str | None = None) -> Path:
    """PNG with one aligned tile per track, captioned with track, identity and frame range."""
    tracks = store.tracks()
    if not tracks:
        raise FaceNotFoundError(f"{store.path.parent} has no face tracks")
    cols = min(6, len(tracks))
    rows = (len(tracks) + cols - 1) // cols
    cap = 34
    sheet = np.full((rows * (tile + cap), cols * tile, 3), 24, np.uint8)
    with open_shot_plate(store, plate_path) as plate:
        for k, t in enumerate(tracks):
            face = representative(store.track_faces(t.id))
            rgb = plate.read(face.frame, display=True)
            crop = align_image(rgb, align_matrix(face.best, tile, "whole_face"), tile)
            y, x = (k // cols) * (tile + cap), (k % cols) * tile
            sheet[y : y + tile, x : x + tile] = crop
            caption(sheet, x + 4, y + tile + 14, f"track {t.id}  id {t.identity}")
            caption(sheet, x + 4, y + tile + 29, f"{t.first_frame}-{t.last_frame}  shot {t.shot}")
    write_png(out, sheet)
    return out


def caption(img: NDArray[np.uint8], x: int, y: int, text: str, scale: float = 0.42) -> None:
    """Draw light ``text`` with its baseline at (x, y) onto an RGB uint8 image, in place."""
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1, cv2.LINE_AA)


def write_png(path: Path, rgb: NDArray[np.generic]) -> None:
    """Write an 8- or 16-bit RGB PNG atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise WriterError(f"cannot encode {path}")
    atomic_write_bytes(path, buf.tobytes())
