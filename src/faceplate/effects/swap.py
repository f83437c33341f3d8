"""Face swap on the shared render path: the trained model turns the shot's actor into the source person."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
import torch

from faceplate.analysis.identity import SAME_PERSON, distance
from faceplate.effects.base import EFFECTS, AlignedFace, Effect, EffectResult, file_digest
from faceplate.errors import ConfigError, ModelError
from faceplate.models import swap_checkpoint as checkpoint
from faceplate.models.swap import SwapModel, device, use_bf16
from faceplate.ops.augment import face_mask
from faceplate.ops.colour_transfer import COLOUR_TRANSFER
from faceplate.ops.filters import gauss
from faceplate.ops.regions import dilate

MaskSource = Literal["hull", "learned", "both"]


@dataclass(frozen=True)
class MergeSettings:
    """How the model's face goes onto the plate."""

    colour: str = "rct"  # COLOUR_TRANSFER mode
    mask: MaskSource = "both"
    erode: float = 0.0  # px at model resolution; negative grows the mask
    blur: float = 4.0  # feather, px at model resolution
    poisson: bool = False  # seamless (Poisson) blend of the face into the plate
    sharpen: float = 0.0  # unsharp amount on the swapped face, 0..1
    temporal: float = 0.0  # 0..0.9: blend with the track's earlier outputs where it barely changed

    def __post_init__(self) -> None:
        COLOUR_TRANSFER.get(self.colour)
        if self.mask not in ("hull", "learned", "both"):
            raise ConfigError(f"unknown mask source {self.mask!r}; valid: hull, learned, both")
        if not 0.0 <= self.sharpen <= 1.0:
            raise ConfigError(f"--sharpen {self.sharpen} is outside 0..1")
        if not 0.0 <= self.temporal <= 0.9:
            raise ConfigError(f"--temporal {self.temporal} is outside 0..0.9")


TEMPORAL_FRAMES = 2  # earlier frames the temporal blend looks at (each costs one more model pass)


@dataclass(frozen=True)
class _Loaded:
    """Per-track context (read-only while rendering): the model and the identity it was trained for."""

    model: SwapModel
    identity: np.ndarray | None


@EFFECTS.register("swap")
@dataclass(frozen=True)
class SwapEffect(Effect):
    """Replace the chosen face with the model's source person (pose, expression and light from the plate)."""

    name: ClassVar[str] = "swap"
    holds_occluders: ClassVar[bool] = False  # the model's own mask decides what of the plate face stays
    model_dir: Path
    merge: MergeSettings = field(default_factory=MergeSettings)

    @property
    def face_type(self) -> str:  # type: ignore[override]
        return str(checkpoint.read_meta(self.model_dir)["arch"]["face_type"])

    @property
    def history(self) -> int:  # type: ignore[override]
        """Earlier frames ``apply`` needs: TEMPORAL_FRAMES with temporal smoothing, else none."""
        return TEMPORAL_FRAMES if self.merge.temporal > 0 else 0

    def record(self) -> dict[str, Any]:
        gen = checkpoint.read_meta(self.model_dir)["generation"]
        return {**super().record(), "model": file_digest(self.model_dir / f"weights-{gen}.safetensors")}

    def resolution(self, plate_iod: float) -> int:
        return int(checkpoint.read_meta(self.model_dir)["arch"]["res"])

    def prepare(self, samples: list[AlignedFace], identity: np.ndarray | None = None) -> _Loaded:
        """Load the model (once per track) and check it was trained for this destination actor."""
        model, _, state = checkpoint.load(self.model_dir, device())
        model = model.for_merging(use_bf16(device()))  # CUDA, or a CPU with AMX/AVX512-BF16: several times faster
        trained = state.dst.get("identity")
        if trained is not None and identity is not None:
            d = distance(np.asarray(trained, np.float32), identity)
            if d >= SAME_PERSON:
                track = samples[0].track if samples else "?"
                raise ModelError(
                    f"{self.model_dir} was trained for another destination actor than track {track} "
                    f"(dlib distance {d:.2f} ≥ {SAME_PERSON}); train it on a faceset of this shot's actor"
                )
        return _Loaded(model, None if trained is None else np.asarray(trained, np.float32))

    @torch.no_grad()
    def apply(self, face: AlignedFace, context: Any) -> EffectResult:
        loaded: _Loaded = context
        img = np.ascontiguousarray(face.image, np.float32)
        rgb, learned = _swap(loaded.model, img)
        if self.merge.temporal > 0 and face.history:
            earlier = [_swap(loaded.model, np.ascontiguousarray(h.image, np.float32))[0] for h in face.history]
            rgb = temporal_blend([*earlier, rgb], self.merge.temporal)
        res = img.shape[0]
        hull = face_mask(face.landmarks, res)
        m = self.merge
        mask = {"hull": hull, "learned": learned, "both": hull * learned}[m.mask].astype(np.float32)
        rgb = COLOUR_TRANSFER.get(m.colour)(rgb, img, hull)
        if m.erode > 0:
            mask = np.asarray(cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=round(m.erode)), np.float32)
        elif m.erode < 0:
            mask = dilate(mask, -m.erode)
        if m.blur > 0:
            mask = np.clip(gauss(mask, m.blur / 2), 0, 1) * (mask > 0 if m.erode >= 0 else 1)
        if m.sharpen > 0:
            rgb = np.clip(rgb + m.sharpen * (rgb - gauss(rgb, 1.0)), 0, 1)
        if m.poisson and (mask > 0.5).any():
            rgb = _poisson(rgb, img, mask)
        return EffectResult(np.asarray(rgb, np.float32), np.asarray(mask, np.float32))


def _swap(model: SwapModel, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(swapped face (R, R, 3), learned mask (R, R)) of an aligned face ``img`` (R, R, 3) in [0, 1]."""
    dev = next(model.parameters()).device
    x = torch.from_numpy(img).permute(2, 0, 1)[None].to(dev, model.dtype)
    rgb_t, mask_t = model.swap(x.contiguous(memory_format=torch.channels_last))
    return rgb_t[0].permute(1, 2, 0).float().cpu().numpy(), mask_t[0, 0].float().cpu().numpy()


def temporal_blend(outputs: list[np.ndarray], amount: float) -> np.ndarray:
    """Blend a track's swapped faces (R, R, 3) of consecutive frames, oldest first, into the last one.

    Aligned frames of one track share the canonical face's place, so earlier outputs can be blended in
    directly (each step: ``(1 - w) * current + w * blended so far``); the weight ``amount * exp(-|change| /
    0.04)`` falls off where the face really changed (no ghosting on motion).
    """
    out = outputs[0]
    for cur in outputs[1:]:
        w = amount * np.exp(-np.abs(cur - out).mean(axis=2, keepdims=True) / 0.04)
        out = (1 - w) * cur + w * out
    return np.asarray(out, np.float32)


def _poisson(face: np.ndarray, plate: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Seamless clone of ``face`` into ``plate`` inside ``mask`` (OpenCV's Poisson blend, 8-bit)."""
    m8 = ((mask > 0.5) * 255).astype(np.uint8)
    ys, xs = np.nonzero(m8)
    centre = (int((xs.min() + xs.max() + 1) // 2), int((ys.min() + ys.max() + 1) // 2))
    f8 = (np.clip(face, 0, 1) * 255 + 0.5).astype(np.uint8)
    p8 = (np.clip(plate, 0, 1) * 255 + 0.5).astype(np.uint8)
    try:
        out = cv2.seamlessClone(f8, p8, m8, centre, cv2.NORMAL_CLONE)
    except cv2.error:
        return face
    return np.asarray(out, np.float32) / 255.0
