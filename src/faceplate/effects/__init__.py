"""Effects on the shared render path. Each works on one aligned face and returns result + matte.

``EFFECTS.get(name)`` is how the CLI and the API find an effect; modules load on first use (swap and
keyframes pull in torch).
"""

from faceplate.effects.base import EFFECTS, AlignedFace, Effect, EffectResult

EFFECTS.lazy("beauty", "faceplate.effects.beauty")
EFFECTS.lazy("deage", "faceplate.effects.deage")
EFFECTS.lazy("deage_reference", "faceplate.effects.reference")
EFFECTS.lazy("swap", "faceplate.effects.swap")
EFFECTS.lazy("keyframes", "faceplate.effects.keyframes")

__all__ = ["EFFECTS", "AlignedFace", "Effect", "EffectResult"]
