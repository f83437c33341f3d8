"""Compositing deliverables of a render (``--deliver``): the layered EXR per frame (comp, face element,
matte, delta, STMaps, occlusion, with the transforms in its metadata) and the aligned face patches.

- ``stmap``: pure layers (a face's Nuke STMap, the premultiplied face element, the occlusion in plate space);
- ``layers``: the layered EXR frame writer; ``patches``: the patch writer (16-bit RGBA PNG + JSON per face).
"""

from faceplate.deliver.layers import (
    STMAP_CONVENTION,
    Deliverable,
    DeliverInfo,
    FrameParts,
    LayersWriter,
    channels,
    header,
    layer_pixels,
    stmap_layers,
    timecode_bcd,
)
from faceplate.deliver.patches import PatchWriter, patch_record, patch_rgba
from faceplate.deliver.stmap import crop_box, face_element, occlusion, sample_stmap, stmap, to_plate

DELIVERABLES = ("layers", "patches")

__all__ = [
    "DELIVERABLES",
    "STMAP_CONVENTION",
    "DeliverInfo",
    "Deliverable",
    "FrameParts",
    "LayersWriter",
    "PatchWriter",
    "channels",
    "crop_box",
    "face_element",
    "header",
    "layer_pixels",
    "occlusion",
    "patch_record",
    "patch_rgba",
    "sample_stmap",
    "stmap",
    "stmap_layers",
    "timecode_bcd",
    "to_plate",
]
