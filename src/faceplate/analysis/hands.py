"""Hands (MediaPipe's bundled palm detector + 21-point hand landmarks) and hand masks for occlusion.

A hand over a face must never be retouched, swapped or de-aged: the render path cuts every effect's matte
by the hands found in that frame.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.analysis.faces import shrink
from faceplate.analysis.mp_graphs import Graph, mediapipe_module

F32 = NDArray[np.float32]
HAND_INPUT = 640  # long side of the image the hand graph sees (its models run at 192-224 px anyway)

_HANDS = """
input_stream: "IMAGE:image"
output_stream: "LANDMARKS:hand_landmarks"
node {
  calculator: "HandLandmarkTrackingCpu"
  input_stream: "IMAGE:image"
  input_side_packet: "NUM_HANDS:num_hands"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_side_packet: "USE_PREV_LANDMARKS:use_prev_landmarks"
  output_stream: "LANDMARKS:hand_landmarks"
}
"""

# Bones of the 21-point hand model (wrist 0; thumb 1-4; index 5-8; middle 9-12; ring 13-16; pinky 17-20).
BONES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (9, 10), (10, 11), (11, 12),
         (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]  # fmt: skip
PALM = [0, 1, 5, 9, 13, 17]
FINGER_ENDS = [(3, 4), (7, 8), (11, 12), (15, 16), (19, 20)]  # (last joint, tip) of each finger
TIP_REACH = 0.5  # each finger drawn on past its tip by this share of its last bone


class HandLandmarker:
    """Up to ``max_hands`` hands per frame, tracked from frame to frame (feed frames in order);
    ``complexity`` 0 (lite) or 1 (full) picks MediaPipe's palm and landmark models."""

    def __init__(self, max_hands: int = 4, complexity: int = 1) -> None:
        pc = mediapipe_module()[3]
        side = {
            "num_hands": pc.create_int(max_hands),
            "model_complexity": pc.create_int(complexity),
            "use_prev_landmarks": pc.create_bool(True),
        }
        self._graph = Graph(_HANDS, "hand_landmarks", side)
        self._size = (0, 0)

    def __call__(self, rgb: NDArray[np.uint8]) -> list[F32]:
        """Hands in uint8 RGB (H, W, 3): each (21, 3) float32, x/y in plate pixels, z relative."""
        self.submit(rgb)
        return self.collect()

    def submit(self, rgb: NDArray[np.uint8]) -> None:
        """Start looking for hands in ``rgb`` (H, W, 3) uint8 on the graph's threads; :meth:`collect` waits for
        them. Frames must be submitted in order, one at a time (the graph tracks hands from frame to frame)."""
        self._size = (int(rgb.shape[0]), int(rgb.shape[1]))
        g = self._graph
        g.submit({"image": g.image_packet(shrink(rgb, HAND_INPUT))})

    def collect(self) -> list[F32]:
        """The hands of the last :meth:`submit` (as :meth:`__call__` returns them)."""
        h, w = self._size
        out = self._graph.collect()
        if not out:
            return []
        hands = []
        for lm_list in self._graph.getter.get_proto_list(out[0]):
            pts = np.array([(p.x * w - 0.5, p.y * h - 0.5, p.z * w) for p in lm_list.landmark], np.float32)
            hands.append(pts)
        return hands

    def close(self) -> None:
        self._graph.close()


def hand_scale(pts: NDArray[np.floating]) -> float:
    """A hand's knuckle span in px from its (21, >=2) points, also for a hand seen edge-on: the larger of the
    2-D span (index to pinky knuckle, 5-17) and 0.6 x the 3-D palm length (wrist to middle knuckle, 0-9),
    which turning the hand does not shorten (span / palm length is 0.6-0.75 on a flat hand)."""
    p = np.asarray(pts, np.float64)
    span = float(np.linalg.norm(p[5, :2] - p[17, :2]))
    palm = float(np.linalg.norm(p[0, : p.shape[1]] - p[9, : p.shape[1]]))
    return max(span, 0.6 * palm, 1.0)


def hand_mask(hands: list[NDArray[np.floating]], shape: tuple[int, int]) -> F32:
    """Mask (H, W) in {0, 1} covering the hands (points in the mask's pixel space): palm + bones 0.75 x the
    hand's knuckle span (:func:`hand_scale`) thick, each finger carried on TIP_REACH of its last bone past the
    tip. On fr_short_hamilton_clip 0130 (fingers along the jaw) it covers 97-99% of the labelled hand, was 48%
    (bones 0.45 x the 2-D span, which shrinks to 7 px on that hand seen edge-on)."""
    m = np.zeros(shape, np.uint8)
    for pts in hands:
        p = np.asarray(pts[:, :2], np.float64)
        width = hand_scale(pts)
        cv2.fillPoly(m, [np.round(p[PALM] * 16).astype(np.int32)], (1,), lineType=cv2.LINE_8, shift=4)
        thick = max(1, round(0.75 * width))
        for a, b in BONES:
            pa, pb = np.round(p[a]).astype(int), np.round(p[b]).astype(int)
            cv2.line(m, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), (1,), thick, lineType=cv2.LINE_8)
        for dip, tip in FINGER_ENDS:  # the model's fingertips fall short of a blurred finger's end
            a, b = np.round(p[tip]).astype(int), np.round(p[tip] + TIP_REACH * (p[tip] - p[dip])).astype(int)
            cv2.line(m, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), (1,), thick, lineType=cv2.LINE_8)
            cv2.circle(m, (int(b[0]), int(b[1])), thick // 2 + 1, (1,), -1)
    return m.astype(np.float32)


def palm_centre(pts: NDArray[np.floating]) -> NDArray[np.float64]:
    """(2,) mean of the wrist and the four knuckles of a (21, >=2) hand."""
    return np.asarray(pts, np.float64)[[0, 5, 9, 13, 17], :2].mean(axis=0)


def in_between(before: list[F32], after: list[F32]) -> list[F32]:
    """Hands to hold out on a frame the hand pass skipped, from the nearest checked frames before and after
    it: both sets, plus the midpoint of each hand before and the after-hand nearest to it (a hand moving
    across the face between the two is covered where it passes)."""
    mids = []
    for h in before:
        if after:
            near = min(after, key=lambda g: float(np.linalg.norm(palm_centre(g) - palm_centre(h))))
            mids.append(np.asarray((h + near) / 2, np.float32))
    return [*before, *after, *mids]
