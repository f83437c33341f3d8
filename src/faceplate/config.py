"""Validated configs, one per stage. The CLI builds these; Python users build them directly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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


class RenderConfig(_Config):
    """Any effect on the render path: the plate's analysis (``extract``), which faces, where the comp, matte
    and delta go.

    Built from flat keywords too: ``RenderConfig(plate=..., out=..., frames=..., tiles=2)`` puts every
    :class:`ExtractConfig` field into ``extract`` (the shot folder defaults to ``<out folder>/<plate>.faceplate``).
    """

    extract: ExtractConfig  # plate, frames, shot folder and every analysis setting: one source of truth
    out: str  # comp: video file or sequence pattern (comp.####.exr)
    track: int | None = None
    face: Path | None = None  # reference photo: the person to change
    format: str | None = None  # writer name; default from the extension
    matte: str | None = None  # separate matte; default: comp alpha (EXR, ProRes 4444), <out>_matte for PNG/TIFF
    #                             sequences, none for review video; "none" for no separate matte
    delta: str | None = None  # comp - plate as EXR (optional)
    strength: float = Field(0.7, ge=0.0, le=1.0)
    codec_options: dict[str, str] = Field(default_factory=dict)  # e.g. {"crf": "14"} for the comp
    overwrite: bool = False  # replace outputs made with other settings (else: refused)
    glasses: Literal["auto", "on", "off"] = "auto"  # hold-out of eyewear: detected dark frames / + mesh region / none
    deliver: list[Literal["layers", "patches"]] = []  # compositing deliverables (faceplate.deliver) beside the comp
    preset: str | None = None  # a named preset of the shot (review page, `faceplate presets`) on the effect's settings

    @field_validator("deliver", mode="before")
    @classmethod
    def _deliver(cls, v: Any) -> Any:
        """None → []; "layers,patches" (or a list of such) → ["layers", "patches"], each once."""
        if v is None:
            return []
        items = [v] if isinstance(v, str) else list(v)
        names = [n.strip() for it in items for n in (it.split(",") if isinstance(it, str) else [it])]
        valid = ("layers", "patches")
        bad = [n for n in names if n not in valid and n != ""]
        if bad:
            raise ValueError(f"unknown deliverable {bad[0]!r} (valid: {', '.join(valid)})")
        return list(dict.fromkeys(n for n in names if n != ""))

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        """Move flat ExtractConfig keywords (plate, shot, frames, tiles...) into ``extract``."""
        if not isinstance(data, dict) or "extract" in data:
            return data
        keys = set(ExtractConfig.model_fields)
        ext = {k: v for k, v in data.items() if k in keys}
        rest = {k: v for k, v in data.items() if k not in keys}
        if ext.get("shot") is None and "plate" in ext and "out" in rest:
            ext["shot"] = default_shot(str(ext["plate"]), str(rest["out"]))
        return {**rest, "extract": ext}

    @property
    def plate(self) -> str:
        return self.extract.plate

    @property
    def hold_glasses(self) -> bool | None:
        """``glasses`` as render.tracks.held_out takes it: None finds dark frames, True also holds out the
        mesh's eyewear region, False holds out none."""
        return {"auto": None, "on": True, "off": False}[self.glasses]

    @property
    def shot(self) -> Path:
        return self.extract.shot

    @property
    def frames(self) -> str | None:
        return self.extract.frames

    def frames_in(self, plate: FrameRange) -> FrameRange:
        return self.extract.frames_in(plate)

    def with_frames(self, frames: str) -> RenderConfig:
        """The same render limited to ``frames`` (a farm chunk)."""
        return self.model_copy(update={"extract": self.extract.model_copy(update={"frames": frames})})


def default_shot(plate: str, out: str) -> Path:
    """Shot folder used when none is given: beside the output, named after the plate."""
    stem = re.sub(r"[#%@]+d?|\.+$", "", Path(plate).stem).strip("._-") or "plate"
    return Path(out).parent / f"{stem}.faceplate"


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

    @model_validator(mode="after")
    def _budget(self) -> TrainConfig:
        if self.iters is None and self.minutes is None:
            raise ValueError("say how long to train: --iters N or --minutes M")
        return self


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


class KeyframeTrainConfig(_Config):
    """``faceplate keyframes train``: painted frames of a plate → a keyframe model."""

    plate: str
    painted: Path  # folder of painted frames, numbered like the plate
    model: Path
    shot: Path | None = None  # default: beside the model
    track: int | None = None
    face: Path | None = None
    res: int = Field(256, ge=64, le=1024, description="aligned working size, a multiple of 16")
    iters: int = Field(1500, ge=1)
    colorspace: str | None = None

    @field_validator("res")
    @classmethod
    def _res(cls, v: int) -> int:
        if v % 16:
            raise ValueError(f"{v} must be a multiple of 16 in 64..1024")
        return v

    @property
    def shot_folder(self) -> Path:
        """``shot``, or the default beside the model."""
        return self.shot or default_shot(self.plate, str(self.model / "x"))


class FacesetConfig(_Config):
    """``faceplate faceset build``: aligned crops of one person from plates, stills and folders of stills."""

    name: Path
    sources: list[str] = Field(min_length=1)
    face: Path | None = None
    res: int = Field(256, ge=64, le=2048)
    face_type: FaceType = "whole_face"
    every: int = Field(1, ge=1)
    min_iod: float = Field(24.0, gt=0)  # smaller faces teach a model nothing useful
    shots: dict[str, Path] = Field(default_factory=dict)  # plate source → its shot folder, when analysed already


class ReferenceDeageConfig(_Config):
    """``faceplate deage --reference``: younger images of the same actor.

    ``reference``: one faceset folder, or stills and folders of stills. With a training budget (``minutes``
    or ``iters``) or an existing ``model`` they become a swap model (stills are built into a faceset first);
    without, the example-based effect runs: procedural de-age (``deage``: DeageSettings keywords) and the
    stills' skin tone and wrinkle energy transferred at ``transfer`` strength.
    """

    render: RenderConfig
    reference: list[Path] = Field(min_length=1)
    model: Path | None = None  # default: beside the output
    minutes: float | None = Field(None, gt=0)  # training budget when the model is new or should train more
    iters: int | None = Field(None, ge=1)
    res: int = Field(128, ge=64, le=512, multiple_of=16)
    ae_dims: int | None = Field(None, ge=4)  # model dims of a new model (None: train swap's defaults)
    e_dims: int | None = Field(None, ge=4)
    d_dims: int | None = Field(None, ge=4)
    d_mask_dims: int | None = Field(None, ge=4)
    deage: dict[str, float | bool] = Field(default_factory=dict)  # example-based: DeageSettings keywords
    transfer: float = Field(1.0, ge=0.0, le=1.0)  # example-based: share of the stills' skin statistics taken

    @field_validator("reference", mode="before")
    @classmethod
    def _one_or_more(cls, v: Any) -> Any:
        return [v] if isinstance(v, str | Path) else v

    @field_validator("reference")
    @classmethod
    def _exist(cls, v: list[Path]) -> list[Path]:
        for p in v:
            if not p.exists():
                raise ValueError(f"{p} does not exist; give younger stills, folders of stills or a faceset")
        if len(v) > 1 and any((p / "faceset.json").is_file() for p in v):
            raise ValueError("give one faceset, or stills and folders of stills, not both")
        return v

    @field_validator("deage")
    @classmethod
    def _deage(cls, v: dict[str, float | bool]) -> dict[str, float | bool]:
        from faceplate.effects.deage import DeageSettings

        try:
            DeageSettings(**v)  # type: ignore[arg-type]
        except TypeError as err:
            raise ValueError(str(err)) from None
        except ConfigError as err:
            raise ValueError(str(err).removeprefix("--")) from None
        return v

    @property
    def faceset(self) -> Path | None:
        """The reference faceset folder, when one was given."""
        p = self.reference[0]
        return p if (p / "faceset.json").is_file() else None

    def stills(self) -> list[Path]:
        """The reference stills: files as given, folders' images in name order (a faceset's: up to 8 spread)."""
        import numpy as np

        from faceplate.media.plate import IMAGE_EXTS

        out: list[Path] = []
        for p in self.reference:
            if p.is_dir():
                imgs = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS and f.is_file())
                if not imgs:
                    raise ConfigError(f"the reference folder {p} holds no images")
                if self.faceset is not None:
                    imgs = [imgs[i] for i in sorted({round(k) for k in np.linspace(0, len(imgs) - 1, 8)})]
                out += imgs
            else:
                out.append(p)
        return out


class Override(_Config):
    """An effect's settings on a frame range of the shot (DeepFaceLab's merger: "from this frame on").

    ``settings`` is a patch of the effect's settings as its record nests them (``{"settings": {"strength":
    0.3}}`` for beauty, ``{"merge": {"blur": 8}}`` for swap), applied on top of the render's own. The rule
    (:func:`override_at`): on a frame, of the overrides covering it the one starting latest wins (equal
    starts: the one stored last); frames no override covers keep the render's settings.
    """

    id: int = 0
    first: int
    last: int | None = None  # None: to the end of the shot
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _order(self) -> Override:
        if self.last is not None and self.last < self.first:
            raise ValueError(f"override frames {self.first}-{self.last}: the last frame is before the first")
        return self

    def covers(self, frame: int) -> bool:
        return self.first <= frame and (self.last is None or frame <= self.last)


def override_at(overrides: list[Override], frame: int) -> Override | None:
    """The override that decides ``frame`` (see :class:`Override`), or None."""
    on = [o for o in overrides if o.covers(frame)]
    return max(on, key=lambda o: (o.first, o.id)) if on else None


class Preset(_Config):
    """A named settings patch of one effect, stored in the shot (``faceplate review``'s tune panel)."""

    effect: str
    name: str = Field(min_length=1, max_length=80)
    settings: dict[str, Any] = Field(default_factory=dict)


C = TypeVar("C", bound=BaseModel)


def build(cls: type[C], **kwargs: Any) -> C:
    """Construct a config, turning validation errors into one readable ConfigError line."""
    try:
        return cls(**kwargs)
    except ValidationError as err:
        e = err.errors()[0]
        loc = [str(p) for p in e["loc"] if p != "extract"]  # nested analysis settings read as plain options
        msg = str(e["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"invalid {'.'.join(loc)}: {msg}" if loc else msg) from None
