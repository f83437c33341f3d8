"""Effects on the shared render path. Each works on one aligned face and returns result + matte."""

from faceplate.effects.base import EFFECTS, AlignedFace, Effect, EffectResult

__all__ = ["EFFECTS", "AlignedFace", "Effect", "EffectResult"]
