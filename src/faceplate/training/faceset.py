"""Facesets: aligned crops of one person, with landmarks, pose and quality, for training swap models.

A faceset is a folder: ``faceset.json`` (settings and one record per face, in curated order),
``NNNNNN.png`` crops (8-bit sRGB-encoded RGB), ``landmarks.npy`` (N, 478, 3) aligned landmarks in crop
pixels in file-number order. Masks come from the landmarks (``face_mask``), so they follow any edit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.align import align_image, align_matrix, to_aligned
from faceplate.analysis.faces import DETECTORS, Landmarker, interocular, landmark_box
from faceplate.analysis.pose import head_pose
from faceplate.config import FacesetConfig
from faceplate.errors import ConfigError, FaceNotFoundError, StoreError, WriterError
from faceplate.fileio import atomic_write, atomic_write_text
from faceplate.media.plate import IMAGE_EXTS, open_plate
from faceplate.review import ReferenceFace, match_reference, open_shot_plate, reference_face, write_png
from faceplate.store import ShotStore

FACESET_VERSION = 1
F32 = NDArray[np.float32]
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class FaceRecord:
    """One face of a faceset."""

    file: str
    source: str
    frame: int
    track: int
    yaw: float
    pitch: float
    blur: float  # sharpness: variance of the Laplacian inside the face (higher = sharper)


@dataclass(frozen=True)
class Faceset:
    """A faceset on disk. ``faces`` are in curated order; ``landmarks[i]`` belongs to file number i."""

    path: Path
    name: str
    res: int
    face_type: str
    faces: list[FaceRecord]
    landmarks: F32
    identity: F32 | None  # mean dlib descriptor (128,), when known

    def __len__(self) -> int:
        return len(self.faces)

    def image(self, i: int) -> NDArray[np.uint8]:
        """Crop ``i`` (in curated order) as uint8 RGB (res, res, 3)."""
        bgr = cv2.imread(str(self.path / self.faces[i].file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise StoreError(f"faceset {self.path}: {self.faces[i].file} is missing or unreadable")
        return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    def face_landmarks(self, i: int) -> F32:
        """Aligned landmarks (478, 3) of crop ``i`` (in curated order)."""
        return self.landmarks[int(self.faces[i].file.split(".")[0])]


def load(path: str | os.PathLike[str]) -> Faceset:
    """Open a faceset folder; StoreError with the reason when it is missing, empty or broken."""
    folder = Path(path)
    meta_path = folder / "faceset.json"
    if not meta_path.is_file():
        raise StoreError(f"{folder} is not a faceset (no faceset.json); build one with `faceplate faceset build`")
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("version") != FACESET_VERSION:
            raise StoreError(f"{folder}: faceset version {meta.get('version')}, this faceplate reads {FACESET_VERSION}")
        faces = [FaceRecord(**f) for f in meta["faces"]]
        landmarks = np.load(folder / "landmarks.npy", allow_pickle=False).astype(np.float32)
        identity = None if meta.get("identity") is None else np.asarray(meta["identity"], np.float32)
        fs = Faceset(folder, meta["name"], int(meta["res"]), meta["face_type"], faces, landmarks, identity)
    except StoreError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StoreError(f"faceset {folder} is corrupt: {err}") from None
    if not faces:
        raise StoreError(f"faceset {folder} is empty: no faces to train on")
    return fs


def save(fs: Faceset) -> None:
    """Write ``faceset.json`` and ``landmarks.npy`` atomically (crops are written as they are made)."""
    meta = {
        "version": FACESET_VERSION,
        "name": fs.name,
        "res": fs.res,
        "face_type": fs.face_type,
        "identity": None if fs.identity is None else [float(v) for v in fs.identity],
        "faces": [asdict(f) for f in fs.faces],
    }
    atomic_write(fs.path / "landmarks.npy", lambda p: np.save(p, fs.landmarks.astype(np.float32), allow_pickle=False))
    atomic_write_text(fs.path / "faceset.json", json.dumps(meta, indent=1))


def sharpness(crop: NDArray[np.uint8], lm: NDArray[np.floating]) -> float:
    """Variance of the Laplacian of grey ``crop`` inside the landmarks' box (blur measure)."""
    x0, y0, x1, y1 = np.clip(landmark_box(lm), 0, crop.shape[0] - 1).astype(int)
    grey = cv2.cvtColor(crop[y0 : y1 + 1, x0 : x1 + 1], cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var()) if grey.size else 0.0


def _record(
    crop: NDArray[np.uint8], plate_lm: F32, aligned_lm: F32, n: int, source: str, frame: int, track: int
) -> FaceRecord:
    yaw, pitch, _ = head_pose(plate_lm)
    return FaceRecord(
        f"{n:06d}.png", source, frame, track, round(yaw, 2), round(pitch, 2), round(sharpness(crop, aligned_lm), 2)
    )


def build(cfg: FacesetConfig, progress: ProgressFn | None = None) -> Faceset:
    """Aligned crops of one person from plates, stills and folders of stills.

    Videos and sequences go through the shot store (extracted into ``<faceset>/.shots``); with ``face``
    only that person's tracks are used, without it the plate must show a single identity.
    """
    from faceplate.align import face_type as check_type
    from faceplate.analysis.identity import Embedder

    check_type(cfg.face_type)
    if not cfg.sources:
        raise ConfigError("give at least one --from source (a plate, a still or a folder of stills)")
    ref = reference_face(cfg.face) if cfg.face is not None else None
    try:
        cfg.name.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriterError(f"cannot create faceset folder {cfg.name}: {err.strerror}") from None
    records: list[FaceRecord] = []
    lms: list[F32] = []
    embeds: list[F32] = []
    embedder = Embedder()
    for source in cfg.sources:
        for crop, plate_lm, aligned_lm, frame, track, rgb in _faces_of(source, cfg, ref):
            n = len(records)
            write_png(cfg.name / f"{n:06d}.png", crop)
            records.append(_record(crop, plate_lm, aligned_lm, n, source, frame, track))
            lms.append(aligned_lm)
            if n % 10 == 0:  # identity samples: every 10th face (dlib is slow)
                embeds.append(embedder(rgb, plate_lm))
            if progress:
                progress(len(records), 0)
    if not records:
        raise FaceNotFoundError(f"no usable face (eye distance ≥ {cfg.min_iod:.0f} px) in {', '.join(cfg.sources)}")
    identity = np.mean(embeds, axis=0).astype(np.float32) if embeds else None
    fs = Faceset(cfg.name, cfg.name.name, cfg.res, cfg.face_type, records, np.stack(lms).astype(np.float32), identity)
    save(fs)
    return fs


def _faces_of(source: str, cfg: FacesetConfig, ref: ReferenceFace | None) -> Iterable[tuple[Any, ...]]:
    path = Path(source)
    if path.is_dir() and not any(p.suffix.lower() in IMAGE_EXTS and p.stem[-1:].isdigit() for p in path.iterdir()):
        for p in sorted(path.iterdir()):
            if p.suffix.lower() in IMAGE_EXTS:
                yield from _still_faces(str(p), cfg, ref)
        return
    if path.suffix.lower() in IMAGE_EXTS and path.is_file():
        yield from _still_faces(source, cfg, ref)
        return
    yield from _plate_faces(source, cfg, ref)


def _still_faces(source: str, cfg: FacesetConfig, ref: ReferenceFace | None) -> Iterable[tuple[Any, ...]]:
    from faceplate.analysis.identity import SAME_PERSON, Embedder, distance

    with open_plate(source) as plate:
        rgb = plate.read(plate.info.first_frame, display=True)
    landmarker = Landmarker()
    faces = [lm for d in DETECTORS.get("mediapipe")(1, 0.5)(rgb) if (lm := landmarker(rgb, d.roi())) is not None]
    landmarker.close()
    faces = [lm for lm in faces if interocular(lm) >= cfg.min_iod]
    if ref is not None:
        emb = Embedder()
        faces = [lm for lm in faces if distance(emb(rgb, lm), ref.descriptor) < SAME_PERSON]
    elif len(faces) > 1:
        faces = [max(faces, key=lambda lm: interocular(lm))]  # a still without --face: its main face
    for lm in faces:
        m = align_matrix(lm, cfg.res, cfg.face_type)
        yield align_image(rgb, m, cfg.res), lm, to_aligned(m, lm).astype(np.float32), 0, 0, rgb


def _plate_faces(source: str, cfg: FacesetConfig, ref: ReferenceFace | None) -> Iterable[tuple[Any, ...]]:
    from faceplate.config import ExtractConfig
    from faceplate.extract import extract

    shot = cfg.shots.get(source) or cfg.name / ".shots" / Path(source.replace("#", "")).stem
    try:
        extract(ExtractConfig(plate=source, shot=shot))
    except FaceNotFoundError:
        return
    with ShotStore.open(shot) as store, open_shot_plate(store) as plate:
        if ref is not None:
            try:
                tracks = match_reference(store, ref)[0]
            except FaceNotFoundError:
                return
        else:
            idents = {t.identity for t in store.tracks()}
            if len(idents) > 1:
                raise ConfigError(f"{source} shows {len(idents)} people; pick one with --face ref.jpg")
            tracks = [t.id for t in store.tracks()]
        wanted: dict[int, list[Any]] = {}
        for t in tracks:
            for f in store.track_faces(t)[:: cfg.every]:
                if f.source != "interp" and interocular(f.landmarks) >= cfg.min_iod:
                    wanted.setdefault(f.frame, []).append(f)
        if not wanted:
            return
        from faceplate.media.frames import FrameRange

        for frame, rgb in plate.frames(FrameRange(min(wanted), max(wanted)), display=True):
            for f in wanted.get(frame, []):
                m = align_matrix(f.best, cfg.res, cfg.face_type)
                yield (
                    align_image(rgb, m, cfg.res),
                    f.best,
                    to_aligned(m, f.best).astype(np.float32),
                    frame,
                    f.track,
                    rgb,
                )


def reorder(fs: Faceset, order: list[int]) -> Faceset:
    return replace(fs, faces=[fs.faces[i] for i in order])


SORT_KEYS = ("blur", "yaw", "pitch", "histogram", "identity")


def _hist(img: NDArray[np.uint8]) -> F32:
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    h = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]).ravel()
    return (h / max(h.sum(), 1.0)).astype(np.float32)


def _identity_vectors(fs: Faceset) -> F32:
    """dlib descriptors per file number, cached in ``identity.npy`` (computing one takes ~0.1 s)."""
    from faceplate.analysis.identity import Embedder

    cache = fs.path / "identity.npy"
    n = len(fs.landmarks)
    if cache.is_file():
        vec = np.load(cache, allow_pickle=False)
        if vec.shape == (n, 128):
            return vec.astype(np.float32)
    emb = Embedder()
    vec = np.zeros((n, 128), np.float32)
    for i, f in enumerate(fs.faces):
        k = int(f.file.split(".")[0])
        vec[k] = emb(fs.image(i), fs.landmarks[k])
    atomic_write(cache, lambda p: np.save(p, vec, allow_pickle=False))
    return vec


def curate(fs: Faceset, by: str, drop_blurry: float = 0.0, dedupe: bool = False) -> Faceset:
    """Sort by ``by`` (see SORT_KEYS), drop the blurriest share and near-duplicates, keeping pose coverage."""
    if by not in SORT_KEYS:
        raise ConfigError(f"unknown sort {by!r}; valid: {', '.join(SORT_KEYS)}")
    if not 0.0 <= drop_blurry < 1.0:
        raise ConfigError(f"--drop-blurry {drop_blurry} must be in [0, 1)")
    idx = list(range(len(fs)))
    if drop_blurry > 0:
        cut = np.quantile([f.blur for f in fs.faces], drop_blurry)
        idx = [i for i in idx if fs.faces[i].blur >= cut]
    if dedupe:
        idx = _dedupe(fs, idx)
    if by == "blur":
        idx.sort(key=lambda i: -fs.faces[i].blur)
    elif by in ("yaw", "pitch"):
        idx.sort(key=lambda i: getattr(fs.faces[i], by))
    elif by == "histogram":
        idx = _chain(idx, {i: _hist(fs.image(i)) for i in idx})
    else:
        vec = _identity_vectors(fs)
        keys = {i: vec[int(fs.faces[i].file.split(".")[0])] for i in idx}
        mean = np.mean(list(keys.values()), axis=0)
        idx.sort(key=lambda i: float(np.linalg.norm(keys[i] - mean)))  # most typical first, outliers last
    return reorder(fs, idx)


def _chain(idx: list[int], hists: dict[int, F32]) -> list[int]:
    """Greedy nearest-neighbour order: each face followed by the most similar remaining one."""
    left, out = set(idx[1:]), idx[:1]
    while left:
        last = hists[out[-1]]
        nxt = min(left, key=lambda i: float(np.abs(hists[i] - last).sum()))
        out.append(nxt)
        left.remove(nxt)
    return out


def _dedupe(fs: Faceset, idx: list[int]) -> list[int]:
    """Drop near-duplicates (same pose within 3°, almost the same colours), keeping the sharper one."""
    keep: list[int] = []
    hists: dict[int, F32] = {}
    for i in sorted(idx, key=lambda i: -fs.faces[i].blur):
        f = fs.faces[i]
        hists[i] = _hist(fs.image(i))
        twin = any(
            abs(fs.faces[k].yaw - f.yaw) < 3 and abs(fs.faces[k].pitch - f.pitch) < 3
            and float(np.abs(hists[k] - hists[i]).sum()) < 0.05
            for k in keep
        )  # fmt: skip
        if not twin:
            keep.append(i)
    return sorted(keep)


def contact_sheet(fs: Faceset, out: Path, tile: int = 96, most: int = 96) -> Path:
    """PNG of the first ``most`` faces in curated order, captioned with yaw/pitch and sharpness."""
    n = min(most, len(fs))
    cols = min(12, n)
    rows = (n + cols - 1) // cols
    sheet = np.full((rows * (tile + 14), cols * tile, 3), 24, np.uint8)
    for k in range(n):
        y, x = (k // cols) * (tile + 14), (k % cols) * tile
        sheet[y : y + tile, x : x + tile] = cv2.resize(fs.image(k), (tile, tile), interpolation=cv2.INTER_AREA)
        f = fs.faces[k]
        cv2.putText(sheet, f"{f.yaw:+.0f}/{f.pitch:+.0f} s{f.blur:.0f}", (x + 2, y + tile + 11),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.3, (230, 230, 230), 1, cv2.LINE_AA)  # fmt: skip
    write_png(out, sheet)
    return out


def coverage_plot(fs: Faceset, out: Path, compare: Faceset | None = None) -> Path:
    """Yaw/pitch scatter PNG of the faceset (and of ``compare``, e.g. the destination) to show pose gaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    ax.scatter([f.yaw for f in fs.faces], [f.pitch for f in fs.faces], s=8, label=f"{fs.name} ({len(fs)})")
    if compare is not None:
        ax.scatter([f.yaw for f in compare.faces], [f.pitch for f in compare.faces], s=8, marker="x",
                   label=f"{compare.name} ({len(compare)})")  # fmt: skip
    ax.set_xlabel("yaw (deg, + = towards image right)")
    ax.set_ylabel("pitch (deg, + = looking down)")
    ax.set_xlim(-90, 90)
    ax.set_ylim(-60, 60)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    ax.set_title("pose coverage")
    try:
        atomic_write(out, lambda p: fig.savefig(p))
    finally:
        plt.close(fig)
    return out
