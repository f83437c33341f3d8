"""The effect interface: aligned face in, (result, matte) out, in aligned space. No I/O, no shared state."""

from __future__ import annotations

import dataclasses
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from faceplate.align import face_type
from faceplate.registry import Registry

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class AlignedFace:
    """One face of one frame in aligned space.

    ``image`` (R, R, 3) float32 encoded RGB in [0, 1] (the plate converted to an sRGB-like encoding when it
    is scene-linear); ``landmarks`` (478, 3) in crop pixels (temporally smoothed); ``iod`` eye distance in
    crop pixels. ``history``: the same track's faces of the frames just before, oldest first (as many as
    the effect's ``history`` asks for and the track has), each aligned by its own landmarks. ``held_out``
    (R, R) in [0, 1]: the track's occluders (glasses) in this crop, which the render path keeps out of the
    effect's matte (an effect may use it to keep them out of its filters too); None when there are none.
    """

    frame: int
    track: int
    image: F32
    landmarks: F32
    iod: float
    history: tuple[AlignedFace, ...] = ()
    held_out: F32 | None = None


@dataclass(frozen=True)
class EffectResult:
    """``image`` (R, R, 3) the changed face, same encoding as the input; ``matte`` (R, R) in [0, 1]."""

    image: F32
    matte: F32


class Effect(ABC):
    """An effect on the render path. ``prepare`` sees sample faces of a track and returns that track's
    context (e.g. a skin-colour model, a loaded model); ``apply`` is then called per frame with it.

    The contract: ``apply`` is pure per frame: no I/O and no state carried from one frame to the next (the
    context is read-only), so a frame renders the same whatever chunk of the shot it is in. An effect that
    looks at earlier frames asks for them with ``history`` and gets them in ``AlignedFace.history``.
    Effects hold settings only, so they pickle to farm workers.
    """

    name: ClassVar[str]
    face_type: ClassVar[str] = "whole_face"
    max_resolution: ClassVar[int] = 768
    streams: ClassVar[bool] = False  # needs no identity: a fresh shot can be analysed and rendered in one pass
    history: ClassVar[int] = 0  # earlier frames of the track that ``apply`` needs (AlignedFace.history)
    holds_occluders: ClassVar[bool] = True  # the track's glasses keep the plate's pixels (AlignedFace.held_out)

    def record(self) -> dict[str, Any]:
        """What makes this effect's output: its name, settings and model fingerprint (JSON-able; resumes
        reuse only frames made by an equal record)."""
        return {"effect": self.name, "settings": _jsonable(self)}

    def resolution(self, plate_iod: float) -> int:
        """Aligned working size for a track whose eye distance on the plate is ``plate_iod`` px.

        About plate resolution (no detail invented or thrown away), a multiple of 32, within
        [128, max_resolution].
        """
        r = plate_iod * face_type(self.face_type).size
        return int(np.clip(round(r / 32) * 32, 128, self.max_resolution))

    def prepare(self, samples: list[AlignedFace], identity: F32 | None = None) -> Any:
        """Per-track context from a few sample faces and the track's mean dlib descriptor (default: nothing)."""
        return None

    @abstractmethod
    def apply(self, face: AlignedFace, context: Any) -> EffectResult: ...


EFFECTS: Registry[Callable[..., Effect]] = Registry("effect")


def _jsonable(obj: Any) -> Any:
    """Dataclass settings → plain JSON values (paths as strings, tuples as lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a model file's bytes (first 16 hex digits), cached per file size and mtime."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        with path.open("rb") as f:
            _DIGESTS[key] = hashlib.file_digest(f, "sha256").hexdigest()[:16]
    return _DIGESTS[key]
