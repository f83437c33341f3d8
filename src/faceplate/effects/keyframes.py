"""Keyframe effect: a keyframe-trained network (models.keyframes) applied to every frame, in aligned space."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from faceplate.effects.base import EFFECTS, AlignedFace, Effect, EffectResult, file_digest
from faceplate.models.keyframes import MODEL_JSON, WEIGHTS, KeyframeSettings, ResidualUNet, load_model
from faceplate.ops.face_coords import F32, face_coords


@EFFECTS.register("keyframes")
@dataclass(frozen=True)
class KeyframeEffect(Effect):
    """Apply a keyframe-trained U-Net to every frame, in aligned space."""

    name: ClassVar[str] = "keyframes"
    holds_occluders: ClassVar[bool] = False  # the artist's paint decides (a fix may be on the glasses: glare)
    model_dir: Path

    @property
    def face_type(self) -> str:  # type: ignore[override]
        return self._settings().face_type

    def record(self) -> dict[str, Any]:
        return {**super().record(), "model": file_digest(self.model_dir / WEIGHTS)}

    def _settings(self) -> KeyframeSettings:
        return KeyframeSettings.from_json(json.loads((self.model_dir / MODEL_JSON).read_text())["settings"])

    def resolution(self, plate_iod: float) -> int:
        return self._settings().res

    def prepare(self, samples: list[AlignedFace], identity: F32 | None = None) -> tuple[ResidualUNet, KeyframeSettings]:
        return load_model(self.model_dir)

    @torch.no_grad()
    def apply(self, face: AlignedFace, context: Any) -> EffectResult:
        net, s = context
        dev = next(net.parameters()).device
        x = torch.from_numpy(np.ascontiguousarray(face.image, np.float32)).permute(2, 0, 1)[None].to(dev)
        coords = None
        if s.face_locked:
            coords = torch.from_numpy(face_coords(face.landmarks, x.shape[-1], s.face_type))[None].to(dev)
        delta, matte = net(x, coords)
        # Full strength: the composite blends the change in by the matte, giving ``predict``'s x + delta * matte.
        out = (x + delta).clamp(0, 1)
        return EffectResult(out[0].permute(1, 2, 0).cpu().numpy(), matte[0, 0].cpu().numpy())
