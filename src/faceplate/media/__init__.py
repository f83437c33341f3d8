"""Plates in and out: video via PyAV, image sequences via OpenImageIO, colour via OpenColorIO."""

from faceplate.media.frames import FrameRange, parse_frame_range
from faceplate.media.plate import Plate, PlateInfo, open_plate
from faceplate.media.writers import WRITERS, FrameWriter, WriterSpec, open_writer

__all__ = [
    "WRITERS",
    "FrameRange",
    "FrameWriter",
    "Plate",
    "PlateInfo",
    "WriterSpec",
    "open_plate",
    "open_writer",
    "parse_frame_range",
]
