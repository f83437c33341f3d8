"""The effect interface: aligned face in, (result, matte) out, in aligned space. No I/O, no shared state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
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
    crop pixels.
    """

    frame: int
    track: int
    image: F32
    landmarks: F32
    iod: float


@dataclass(frozen=True)
class EffectResult:
    """``image`` (R, R, 3) the changed face, same encoding as the input; ``matte`` (R, R) in [0, 1]."""

    image: F32
    matte: F32


class Effect(ABC):
    """An effect on the render path. ``prepare`` sees sample faces of a track and returns that track's
    context (e.g. a skin-colour model); ``apply`` is then called per frame with it. Effects hold settings
    only, so they pickle to farm workers."""

    name: ClassVar[str]
    face_type: ClassVar[str] = "whole_face"
    max_resolution: ClassVar[int] = 768
    streams: ClassVar[bool] = False  # needs no identity: a fresh shot can be analysed and rendered in one pass

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
