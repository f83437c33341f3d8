"""The one render path every effect runs on (see ``run``), in its parts:

- ``tracks``: aligned faces and each track's effect context;
- ``composite``: un-align the change and the matte onto the plate (pure ops);
- ``outputs``: the comp, matte and delta writers, refusing to overwrite the plate, and the per-output
  record that lets a rerun resume only what the same settings made;
- ``stream``: analyse and render a fresh shot in one pass;
- ``chunks``: frame-range chunks for farms; ``preview``: labelled before/after and strength sweep PNGs.
"""

from faceplate.config import default_shot
from faceplate.render.chunks import plan_chunks
from faceplate.render.composite import Change, composite, face_changes, occlude, paste, paste_yuv, render_frame
from faceplate.render.outputs import check_outputs, default_matte, output_paths, record_path, sibling
from faceplate.render.preview import preview
from faceplate.render.run import RenderSummary, render
from faceplate.render.tracks import ColourPath, TrackContext, aligned_face, prepare_tracks, sample_picks, track_context

__all__ = [
    "Change",
    "ColourPath",
    "RenderSummary",
    "TrackContext",
    "aligned_face",
    "check_outputs",
    "composite",
    "default_matte",
    "default_shot",
    "face_changes",
    "occlude",
    "output_paths",
    "paste",
    "paste_yuv",
    "plan_chunks",
    "prepare_tracks",
    "preview",
    "record_path",
    "render",
    "render_frame",
    "sample_picks",
    "sibling",
    "track_context",
]
