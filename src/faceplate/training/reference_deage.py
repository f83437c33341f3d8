"""Reference-based de-aging: younger images of the same actor, refused when they show somebody else.

Two ways: with a training budget (or an existing model), the younger faceset (or a faceset built from the
stills) becomes the swap source (issue #4's training) and the plate's own face the destination; without,
the example-based effect (:mod:`faceplate.effects.reference`) de-ages procedurally and takes the stills'
skin tone and wrinkle energy, no training. Both gate on ``SAME_PERSON_ACROSS_AGE`` (an actor's younger self
can be further than dlib's usual 0.6).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from faceplate.analysis.identity import SAME_PERSON_ACROSS_AGE, distance
from faceplate.config import FacesetConfig, ReferenceDeageConfig, TrainConfig
from faceplate.effects.base import Effect, file_digest
from faceplate.errors import ConfigError, FaceNotFoundError
from faceplate.export import select_tracks
from faceplate.extract import extract
from faceplate.render import RenderSummary, render
from faceplate.store import ShotStore
from faceplate.training.faceset import Faceset, build, load

if TYPE_CHECKING:
    from faceplate.effects.swap import MergeSettings


def check_same_person(reference: Faceset, shot: Path, tracks: list[int]) -> float:
    """dlib distance between the reference faceset and the plate's chosen face; refuse another person."""
    if reference.identity is None:
        raise FaceNotFoundError(f"reference faceset {reference.path} has no identity data; rebuild it")
    with ShotStore.open(shot) as store:
        vecs = [v for t, _, v in store.embeddings() if t in tracks]
    if not vecs:
        raise FaceNotFoundError("the plate's face is too small to identify; cannot check the reference")
    d = distance(reference.identity, np.mean(vecs, axis=0).astype(np.float32))
    if d >= SAME_PERSON_ACROSS_AGE:
        raise ConfigError(
            f"the reference {reference.path} shows another person than the plate's face (dlib distance "
            f"{d:.2f} ≥ {SAME_PERSON_ACROSS_AGE}, the same-actor-across-age limit); use younger footage of the "
            "same actor"
        )
    return d


def example_effect(cfg: ReferenceDeageConfig) -> Effect:
    """The no-training effect of ``cfg``: procedural de-age plus the stills' skin (see effects/reference.py)."""
    from faceplate.effects.deage import DeageSettings
    from faceplate.effects.reference import ReferenceDeageEffect
    from faceplate.ops.texture_transfer import TransferSettings

    stills = tuple(str(p.resolve()) for p in cfg.stills())
    return ReferenceDeageEffect(DeageSettings(**cfg.deage), stills, TransferSettings().scaled(cfg.transfer))  # type: ignore[arg-type]


def stills_faceset(cfg: ReferenceDeageConfig) -> Faceset:
    """The reference as a faceset: the one given, or one built (once) from the stills beside the output."""
    if cfg.faceset is not None:
        return load(cfg.faceset)
    stills = cfg.stills()
    key = hashlib.sha256("".join(sorted(file_digest(p) for p in stills)).encode()).hexdigest()[:12]
    r = cfg.render
    name = Path(r.out).parent / f"{Path(r.shot).stem}.reference_{key}"
    if (name / "faceset.json").exists():
        return load(name)
    return build(FacesetConfig(name=name, sources=[str(p) for p in stills], res=256))


def reference_deage(
    cfg: ReferenceDeageConfig,
    progress: Callable[[int, int], None] | None = None,
    merge: MergeSettings | None = None,
) -> RenderSummary:
    """De-age the plate's actor from younger images of them: swap model when training, else example-based."""
    r = cfg.render
    shot = r.shot
    model = cfg.model or Path(r.out).parent / f"{Path(shot).stem}.deage_model"
    if not (cfg.minutes or cfg.iters or (model / "model.json").exists()):
        return render(r, example_effect(cfg), progress)  # the effect gates on the track's identity itself
    from faceplate.effects.swap import MergeSettings, SwapEffect
    from faceplate.training.swap import train

    extract(r.extract)
    ref = stills_faceset(cfg)
    with ShotStore.open(shot) as store:
        tracks = select_tracks(store, r.track, r.face, allow_all=True)
    check_same_person(ref, shot, tracks)
    if cfg.minutes or cfg.iters:
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
        train(TrainConfig(src=ref.path, dst=dst, model=model, res=cfg.res, iters=cfg.iters, minutes=cfg.minutes,
                          **dims))  # fmt: skip
    return render(r, SwapEffect(model, merge or MergeSettings()), progress)
