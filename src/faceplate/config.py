"""Validated configs, one per stage. The CLI builds these; Python users build them directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from faceplate.errors import ConfigError
from faceplate.media.frames import FrameRange, parse_frame_range

FaceType = Literal["face", "whole_face", "head"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExtractConfig(_Config):
    """``faceplate extract``: analyse every face of a plate into the shot store."""

    plate: str
    shot: Path
    frames: str | None = None  # "1001-1100"
    colorspace: str | None = None  # plate colour space override (alias or OCIO name)
    first_frame: int = 0  # number of a video's first frame (sequences use their file numbers)
    detector: str = "mediapipe"
    tiles: int = Field(1, ge=1, le=4, description="extra detector tile grid for tiny faces (1 = whole frame)")
    min_score: float = Field(0.5, gt=0.0, lt=1.0)
    detect_every: int = Field(5, ge=1, le=250)
    max_miss: int = Field(8, ge=0, le=250)
    embed_every: int = Field(24, ge=1)
    embed_max: int = Field(6, ge=1, le=100)
    link_gap_s: float = Field(2.0, ge=0.0, description="re-link same-person tracks across gaps up to this long")
    smooth_min_cutoff: float = Field(2.0, gt=0.0)
    smooth_beta: float = Field(0.5, ge=0.0)
    commit_every: int = Field(48, ge=1)
    hands: bool = True  # find hands near faces: every effect leaves them untouched
    # analysis on one core, decoding on the others: faster while analysis dominates; None = only for
    # plates up to ~3 MP (at 4K, decoding needs every core; see bench/RESULTS.md)
    pin_cores: bool | None = None

    @field_validator("frames")
    @classmethod
    def _frames(cls, v: str | None) -> str | None:
        if v is not None:
            parse_frame_range(v)
        return v

    def frame_range(self) -> FrameRange | None:
        return None if self.frames is None else parse_frame_range(self.frames)

    def frames_in(self, plate: FrameRange) -> FrameRange:
        """The requested frames clipped to the plate's (all of them when none were asked for)."""
        return plate if self.frames is None else parse_frame_range(self.frames).clip(plate)


class RenderConfig(ExtractConfig):
    """Any effect on the render path: which plate and faces, where the comp, matte and delta go."""

    plate: str
    out: str  # comp: video file or sequence pattern (comp.####.exr)
    shot: Path | None = None  # type: ignore[assignment]  # default: <out folder>/<plate>.faceplate
    track: int | None = None
    face: Path | None = None  # reference photo: the person to change
    format: str | None = None  # writer name; default from the extension
    matte: str | None = None  # separate matte; default: comp alpha (EXR, ProRes 4444), <out>_matte for PNG/TIFF
    #                             sequences, none for review video; "none" for no separate matte
    delta: str | None = None  # comp - plate as EXR (optional)
    strength: float = Field(0.7, ge=0.0, le=1.0)
    codec_options: dict[str, str] = Field(default_factory=dict)  # e.g. {"crf": "14"} for the comp


class TrainConfig(_Config):
    """``faceplate train swap``: source faceset (new face) + destination faceset (the shot's actor) → model."""

    src: Path
    dst: Path
    model: Path
    arch: Literal["df", "liae"] | None = None  # None: the stored model's, else df
    res: int | None = Field(None, ge=64, le=512)  # None: stored, else 128
    ae_dims: int | None = Field(None, ge=4)
    e_dims: int | None = Field(None, ge=4)
    d_dims: int | None = Field(None, ge=4)
    d_mask_dims: int | None = Field(None, ge=4)
    iters: int | None = Field(None, ge=1)  # train until the model has this many iterations
    minutes: float | None = Field(None, gt=0)  # or for this long (this run)
    batch: int = Field(8, ge=1, le=256)
    lr: float = Field(5e-5, gt=0, lt=1)
    ct: str = "rct"  # colour transfer of source samples towards the destination while training
    warp: bool = True
    flip: bool = True
    eye_mouth_prio: float = Field(10.0, ge=0)
    preview_every: int = Field(250, ge=1)
    save_every: int = Field(1000, ge=1)
    bf16: bool | None = None  # bf16 autocast; None: on CUDA, and on CPUs with native bf16 (AVX512-BF16/AMX)
    gan_power: float = Field(0.0, ge=0.0, le=10.0)  # > 0: adversarial (PatchGAN) phase for sharper faces
    gan_after: int = Field(5000, ge=0)  # ... starting at this iteration (after the warm-up)
    seed: int = 0

    @field_validator("iters")
    @classmethod
    def _budget(cls, v: int | None) -> int | None:
        return v


class AlignConfig(_Config):
    """``faceplate align``: aligned crops of one track, for training."""

    shot: Path
    out: Path
    track: int | None = None
    face: Path | None = None  # reference photo: pick the track of this person
    res: int = Field(256, ge=16, le=4096)
    face_type: FaceType = "whole_face"
    frames: str | None = None
    every: int = Field(1, ge=1)
    smoothed: bool = True


C = TypeVar("C", bound=BaseModel)


def build(cls: type[C], **kwargs: Any) -> C:
    """Construct a config, turning validation errors into one readable ConfigError line."""
    try:
        return cls(**kwargs)
    except ValidationError as err:
        e = err.errors()[0]
        where = ".".join(str(p) for p in e["loc"]) or cls.__name__
        raise ConfigError(f"invalid {where}: {e['msg']}") from None
