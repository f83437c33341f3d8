"""``faceplate review``'s validated settings: which shot, which renders, where to listen, how to view."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The view picked when none is given: display-like plates (video, sRGB stills) are shown as encoded, as
#: the face analysis sees them; scene-linear plates through the display's colorimetric view.
AUTO_VIEW = "auto"


class ReviewConfig(BaseModel):
    """The review server of one shot folder (``faceplate review SHOT``).

    ``renders``: outputs to compare with the plate (video, ``comp.####.exr`` sequence or still); their mattes
    and deltas are found beside them. ``port`` 0 picks a free port. ``token`` None draws a random one.
    ``display``/``view``: the OCIO display and view of the proxies (None: the config's default display;
    ``auto``: see AUTO_VIEW). ``plate``: the plate's path when it moved since extraction. ``models``: the
    model folders the page may name (swap, keyframes, the training monitor): these, folders inside them, and
    folders inside the shot; no other path from the page is read.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    shot: Path
    renders: list[str] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    open_browser: bool = True
    token: str | None = Field(None, min_length=16)
    plate: str | None = None
    models: list[Path] = Field(default_factory=list)
    display: str | None = None
    view: str = AUTO_VIEW
    proxy_format: Literal["jpeg", "png"] = "jpeg"
    jpeg_quality: int = Field(92, ge=50, le=100)
    cache_dir: Path | None = None  # default: SHOT/review_cache
    cache_limit_gb: float = Field(8.0, ge=0.0, description="Proxy cache size; least recently used go first (0: none)")
    warm_plate: bool = Field(True, description="Make every plate proxy in the background from the start")
    jitter_spike: float = Field(3.0, gt=1.0, description="QC: a frame's landmark jitter this many times the track's")
    drift: float = Field(0.45, gt=0.0, description="QC: identity sample this far (dlib) from its track's mean")

    @property
    def cache_folder(self) -> Path:
        """Where proxies are cached (in the shot folder unless told otherwise)."""
        return self.cache_dir or self.shot / "review_cache"

    @property
    def model_roots(self) -> list[Path]:
        """Where the page's model folders may lie: the ``models`` given and the shot folder."""
        return [*self.models, self.shot]

    @property
    def output_roots(self) -> list[Path]:
        """Where a render job may write: the shot folder and the folders of the renders given."""
        return [self.shot, *(Path(r).parent for r in self.renders)]
