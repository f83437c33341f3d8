"""``faceplate qc``'s validated settings: which render, which shot, where the report goes, the thresholds."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Every flag ``faceplate qc`` can raise (what ``--fail-on`` accepts), and what it means.
FLAGS: dict[str, str] = {
    "drift_reference": "output face's dlib distance to the reference (photo, else the plate track's median)",
    "drift_median": "output face's dlib distance to the output's own median descriptor",
    "jitter": "output landmarks' frame-to-frame motion minus the plate's, % of the eye distance",
    "flicker": "comp's warp error (plate flow) inside the matte minus the plate's own, 8-bit code values",
    "matte_edge": "the matte sliding against the plate's flow (phase correlation), % of the eye distance",
    "not_rendered": "a rendered track's face is in the shot but the matte is empty or the comp equals the plate",
    "face_lost": "no face found in the output where the plate has one",
    "missing_frame": "a frame of the render is missing or unreadable",
    "nonfinite": "NaN/Inf pixels in the comp or matte",
    "outside_matte": "pixels changed (comp vs plate) where the matte is 0",
}

#: Measures reported (JSON, plots) but never flagged.
MEASURES: dict[str, str] = {
    "matte_change": "mean motion of every matte edge (holes too) against the plate's flow, % of the eye distance",
}


class QcConfig(BaseModel):
    """``faceplate qc RENDER``: measure a render against its plate and shot; thresholds decide the flags.

    Defaults were set on the d18 clip's beauty render (clean values far below them, tests/test_qc.py) and
    the faults put in on purpose there (above them). ``outside_tolerance`` suits lossless renders (EXR, PNG16,
    TIFF16: untouched pixels are the plate's); lossy video renders need more (ProRes 4444: ~6 codes, H.264's
    4:2:0 re-encode: use ``outside_pixels`` too, or read its ``outside_matte`` values as a measure only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    render: str  # comp: video, comp.####.exr / .png sequence
    shot: Path | None = None  # default: from the render's record (the shot beside the output)
    matte: str | None = None  # default: the comp's alpha (EXR, ProRes 4444), else its _matte sidecar
    reference: Path | None = None  # photo of the person: drift is measured against it
    out: Path | None = None  # report folder; default SHOT/qc/<render name>
    first_frame: int | None = None  # plate frame of a video render's first frame (default: the plate's first)
    overwrite: bool = False  # replace a report folder that holds something else
    fail_on: list[str] = Field(default_factory=lambda: ["any"])  # flags that make the exit code 1
    # thresholds (a flag is raised above them)
    drift_reference: float = Field(0.6, gt=0, description="dlib distance (dlib's same-person limit: 0.6)")
    drift_median: float = Field(0.45, gt=0, description="dlib distance to the output's own median")
    jitter: float = Field(1.0, gt=0, description="% eye distance of extra landmark motion")
    flicker: float = Field(1.0, gt=0, description="8-bit code values of extra warp error inside the matte")
    matte_edge: float = Field(3.0, gt=0, description="% eye distance the matte slides against the flow")
    jitter_px: float = Field(1.0, ge=0, description="... and at least this many plate px (small faces' noise)")
    matte_edge_px: float = Field(2.0, ge=0, description="... and at least this many plate px")
    outside_tolerance: float = Field(0.5, ge=0, description="8-bit code values a pixel outside the matte may move")
    outside_pixels: int = Field(0, ge=0, description="pixels outside the matte allowed to move beyond it")
    render_tolerance: float = Field(0.5, ge=0, description="8-bit code values: less change is 'not rendered'")
    identity_every: int = Field(12, ge=1, description="descriptor every N frames (and on every flagged frame)")
    work_size: int = Field(160, ge=48, le=1024, description="face crop's long side for flow and warps, px")

    @field_validator("fail_on")
    @classmethod
    def _fail_on(cls, v: list[str]) -> list[str]:
        names = [n.strip() for item in v for n in item.split(",") if n.strip()]
        bad = [n for n in names if n not in FLAGS and n not in ("any", "none")]
        if bad:
            raise ValueError(f"unknown flag {bad[0]!r} (flags: any, none, {', '.join(FLAGS)})")
        return names or ["any"]

    def fails(self, flags: set[str]) -> bool:
        """Whether the raised ``flags`` make the exit code 1."""
        if "none" in self.fail_on:
            return False
        return bool(flags) if "any" in self.fail_on else bool(flags & set(self.fail_on))
