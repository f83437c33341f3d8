"""Thin wrappers over MediaPipe 0.10.21 CPU graphs built from the models bundled in its wheel.

We drive the bundled subgraphs (``FaceDetectionFullRangeCpu``, ``FaceLandmarkCpu``) directly rather than
the legacy ``solutions`` API, so we choose every crop ourselves: the full-range detector runs on the whole
frame (or tiles of it) and the 478-point landmark model on a crop we cut at plate resolution.
Each object owns its graph: create one per worker, never share across processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceplate.cpu import threads_configured, usable_cores
from faceplate.errors import ModelError


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence C++ logging (TFLite's 'Created delegate' lines) written straight to fd 2."""
    if os.environ.get("FACEPLATE_VERBOSE"):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        _libc_flush()  # C stdio may still hold the lines in its buffer: flush them into /dev/null
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _libc_flush() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


def _light_package() -> Any:
    """The ``mediapipe`` package without running its ``__init__`` eagerly (returns the module).

    That ``__init__`` imports ``solutions`` (matplotlib, 0.6 s) and ``tasks`` (sounddevice): 0.8 of the
    1.1 s a fresh process spent importing MediaPipe, i.e. ~4 ms a frame of a 6 s shot. The graphs need
    only ``mediapipe.framework`` and ``mediapipe.python``. The package's own ``__init__`` still runs, in
    the same module, the first time anything asks it for another attribute (``mediapipe.solutions``,
    ``__version__``), so other code in the process sees the usual package (PEP 562 ``__getattr__``).
    """
    if "mediapipe" in sys.modules:
        return sys.modules["mediapipe"]
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or spec.loader is None:
        raise ImportError("No module named 'mediapipe'")
    pkg = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def complete(name: str) -> Any:
        del pkg.__dict__["__getattr__"]
        loader.exec_module(pkg)  # the real __init__: everything below is a plain attribute from now on
        return getattr(pkg, name)

    pkg.__dict__["__getattr__"] = complete
    sys.modules["mediapipe"] = pkg
    return pkg


def mediapipe_module() -> Any:
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        mp = _light_package()
        from google.protobuf import text_format
        from mediapipe.framework import calculator_pb2
        from mediapipe.framework.formats import (  # noqa: F401  (registers the output message types)
            classification_pb2,
            detection_pb2,
            landmark_pb2,
            rect_pb2,
        )
        from mediapipe.python import packet_creator, packet_getter
        from mediapipe.python._framework_bindings import calculator_graph, image_frame, resource_util
    except ImportError as err:  # pragma: no cover - install problem
        if _interrupted(err):  # Ctrl-C while a C extension initialised: pybind11 reports it as an ImportError
            raise KeyboardInterrupt from None
        raise ModelError(f"mediapipe 0.10.21 is not installed correctly: {err}") from None
    # bundled models are resolved relative to the site-packages folder that holds `mediapipe/`
    # (the same constant, process-wide setting MediaPipe's own solutions make)
    resource_util.set_resource_dir(os.path.dirname(os.path.dirname(mp.__file__)))
    return mp, text_format, calculator_pb2, packet_creator, packet_getter, calculator_graph, image_frame


def _interrupted(err: BaseException) -> bool:
    """Was ``err`` raised because of a KeyboardInterrupt (its cause or context, at any depth)?"""
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


class Graph:
    """One running CalculatorGraph: feed an image (+ side inputs), wait, collect one output list."""

    def __init__(self, config: str, output: str, side: dict[str, Any] | None = None) -> None:
        _, text_format, calculator_pb2, self._pc, self._pg, calculator_graph, self._if = mediapipe_module()
        cfg = text_format.Parse(config, calculator_pb2.CalculatorGraphConfig())
        if threads_configured():  # the default executor has one thread per core of the machine, not of the process
            cfg.num_threads = usable_cores()
        try:
            self._graph = calculator_graph.CalculatorGraph(graph_config=cfg)
            self._out: list[Any] = []
            self._graph.observe_output_stream(output, lambda _s, p: self._out.append(p))
            with quiet_stderr():  # calculators open (and log) on graph threads: wait for them
                self._graph.start_run(input_side_packets=side or {})
                self._graph.wait_until_idle()
        except Exception as err:
            raise ModelError(f"cannot start MediaPipe graph: {err}") from None
        self._ts = 0

    def image_packet(self, rgb: NDArray[np.uint8]) -> Any:
        """An image packet of uint8 RGB (H, W, 3) (copied) for :meth:`run` / :meth:`submit`."""
        return self._pc.create_image_frame(image_format=self._if.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))

    @property
    def getter(self) -> Any:
        """MediaPipe's ``packet_getter`` module, to read output packets."""
        return self._pg

    def run(self, inputs: dict[str, Any]) -> list[Any]:
        """Feed one set of inputs, wait, return the output packets."""
        self.submit(inputs)
        return self.collect()

    def submit(self, inputs: dict[str, Any]) -> None:
        """Feed one set of inputs without waiting: the graph works on its own threads while the caller goes
        on; :meth:`collect` waits and returns the outputs. One submission at a time (outputs are the same as
        :meth:`run`'s: the graph sees the same inputs in the same order)."""
        self._ts += 1
        self._out.clear()
        try:
            if self._ts <= 2:  # the first runs log (TFLite's delegate lines) while they work: wait in silence
                with quiet_stderr():
                    self._add(inputs)
                    self._graph.wait_until_idle()
            else:
                self._add(inputs)
        except RuntimeError as err:
            raise ModelError(f"MediaPipe graph failed: {str(err).strip().splitlines()[-1]}") from None

    def collect(self) -> list[Any]:
        """Wait for the last :meth:`submit` and return its output packets."""
        try:
            self._graph.wait_until_idle()
        except RuntimeError as err:
            raise ModelError(f"MediaPipe graph failed: {str(err).strip().splitlines()[-1]}") from None
        return list(self._out)

    def _add(self, inputs: dict[str, Any]) -> None:
        for name, packet in inputs.items():
            self._graph.add_packet_to_input_stream(name, packet.at(self._ts))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._graph.close()


_DETECT = """
input_stream: "IMAGE:image"
output_stream: "DETECTIONS:detections"
node { calculator: "FaceDetectionFullRangeCpu" input_stream: "IMAGE:image" output_stream: "DETECTIONS:detections" }
"""

_LANDMARKS = """
input_stream: "IMAGE:image"
input_stream: "ROI:roi"
output_stream: "LANDMARKS:landmarks"
node {
  calculator: "FaceLandmarkCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  input_side_packet: "WITH_ATTENTION:with_attention"
  output_stream: "LANDMARKS:landmarks"
}
"""


class FullRangeDetector(Graph):
    """MediaPipe full-range BlazeFace (192x192 input, faces up to ~5 m)."""

    def __init__(self) -> None:
        super().__init__(_DETECT, "detections")

    def __call__(self, rgb: NDArray[np.uint8]) -> list[tuple[float, NDArray[np.float32], NDArray[np.float32]]]:
        """Detect faces in uint8 RGB (H, W, 3).

        Returns ``(score, box, keypoints)`` per face: box (4,) = x0, y0, x1, y1 and keypoints (6, 2) in
        *normalised* [0, 1] image coordinates (0 = left/top edge).
        """
        out = self.run({"image": self.image_packet(rgb)})
        if not out:
            return []
        faces = []
        for d in self._pg.get_proto_list(out[0]):
            bb = d.location_data.relative_bounding_box
            box = np.array([bb.xmin, bb.ymin, bb.xmin + bb.width, bb.ymin + bb.height], np.float32)
            kps = np.array([[k.x, k.y] for k in d.location_data.relative_keypoints], np.float32)
            faces.append((float(d.score[0]), box, kps))
        return faces


class MeshLandmarker(Graph):
    """MediaPipe face mesh with attention: 478 points (468 mesh + 10 iris) on a face crop."""

    def __init__(self) -> None:
        mp = mediapipe_module()
        super().__init__(_LANDMARKS, "landmarks", {"with_attention": mp[3].create_bool(True)})
        from mediapipe.framework.formats import rect_pb2

        self._roi = self._pc.create_proto(rect_pb2.NormalizedRect(x_center=0.5, y_center=0.5, width=1.0, height=1.0))

    def __call__(self, crop: NDArray[np.uint8]) -> NDArray[np.float32] | None:
        """Landmarks of the face filling the uint8 RGB crop (S, S, 3), or None when no face is present.

        Returns (478, 3) float32: x, y normalised to the crop ([0, 1], 0 = left/top edge), z in the same
        units as x (relative depth, negative towards the camera).
        """
        out = self.run({"image": self.image_packet(crop), "roi": self._roi})
        if not out:
            return None
        lm = self._pg.get_proto(out[0]).landmark
        return np.array([(p.x, p.y, p.z) for p in lm], np.float32)
