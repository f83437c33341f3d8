"""Reference-based de-aging: younger footage of the same actor becomes the swap source (issue #4's
training), the plate's own face the destination; refused when the reference is somebody else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from faceplate.analysis.identity import SAME_PERSON, distance
from faceplate.config import FacesetConfig, ReferenceDeageConfig, TrainConfig
from faceplate.effects.swap import MergeSettings, SwapEffect
from faceplate.errors import ConfigError, FaceNotFoundError
from faceplate.export import select_tracks
from faceplate.extract import extract
from faceplate.render import RenderSummary, render
from faceplate.store import ShotStore
from faceplate.training.faceset import Faceset, build, load
from faceplate.training.swap import train


def check_same_person(reference: Faceset, shot: Path, tracks: list[int]) -> float:
    """dlib distance between the reference faceset and the plate's chosen face; refuse another person."""
    if reference.identity is None:
        raise FaceNotFoundError(f"reference faceset {reference.path} has no identity data; rebuild it")
    with ShotStore.open(shot) as store:
        vecs = [v for t, _, v in store.embeddings() if t in tracks]
    if not vecs:
        raise FaceNotFoundError("the plate's face is too small to identify; cannot check the reference")
    d = distance(reference.identity, np.mean(vecs, axis=0).astype(np.float32))
    if d >= SAME_PERSON:
        raise ConfigError(
            f"the reference {reference.path} shows another person than the plate's face "
            f"(dlib distance {d:.2f} ≥ {SAME_PERSON}); use younger footage of the same actor"
        )
    return d


def reference_deage(
    cfg: ReferenceDeageConfig,
    progress: Callable[[int, int], None] | None = None,
    merge: MergeSettings | None = None,
) -> RenderSummary:
    """Train (or reuse) a swap model from the younger reference faceset onto the plate's actor, then render it."""
    r = cfg.render
    shot = r.shot
    extract(r.extract)
    ref = load(cfg.reference)
    with ShotStore.open(shot) as store:
        tracks = select_tracks(store, r.track, r.face, allow_all=True)
    check_same_person(ref, shot, tracks)
    model = cfg.model or Path(r.out).parent / f"{Path(shot).stem}.deage_model"
    if cfg.minutes or cfg.iters or not (model / "model.json").exists():
        if not (cfg.minutes or cfg.iters):
            raise ConfigError("the reference model is new: say how long to train it (--train-minutes or --train-iters)")
        dst = Path(shot) / "faceset_plate"
        if not (dst / "faceset.json").exists():
            build(
                FacesetConfig(
                    name=dst,
                    sources=[r.plate],
                    face=r.face,
                    res=max(cfg.res, ref.res),
                    face_type=ref.face_type,
                    shots={r.plate: shot},
                )
            )  # the plate is analysed already
        dims = {k: v for k in ("ae_dims", "e_dims", "d_dims", "d_mask_dims") if (v := getattr(cfg, k)) is not None}
        train(TrainConfig(src=cfg.reference, dst=dst, model=model, res=cfg.res, iters=cfg.iters, minutes=cfg.minutes,
                          **dims))  # fmt: skip
    return render(r, SwapEffect(model, merge or MergeSettings()), progress)
