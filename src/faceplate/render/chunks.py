"""Frame-range chunks of a render, for farms: each chunk is idempotent and resumable."""

from __future__ import annotations

from faceplate.config import RenderConfig
from faceplate.errors import ConfigError
from faceplate.media.plate import open_plate
from faceplate.media.writers import WRITERS, writer_name


def plan_chunks(cfg: RenderConfig, size: int) -> list[RenderConfig]:
    """Split a sequence render into frame-range chunks of at most ``size`` frames.

    Run ``faceplate extract`` once first; then e.g. ``client.map(lambda c: render(c, effect), chunks)`` on Dask.
    """
    if size < 1:
        raise ConfigError(f"chunk size {size} must be at least 1 frame")
    if not WRITERS.get(writer_name(cfg.out, cfg.format)).farmable:
        raise ConfigError("only image-sequence outputs can be split across machines; write e.g. comp.####.exr")
    ext = cfg.extract
    with open_plate(ext.plate, colorspace=ext.colorspace, first_frame=ext.first_frame) as plate:
        rng = cfg.frames_in(plate.info.frames)
    return [cfg.with_frames(str(c)) for c in rng.chunks(size)]
