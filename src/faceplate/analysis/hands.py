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


class HandLandmarker:
    """Up to ``max_hands`` hands per frame, tracked from frame to frame (feed frames in order)."""

    def __init__(self, max_hands: int = 4) -> None:
        pc = mediapipe_module()[3]
        side = {
            "num_hands": pc.create_int(max_hands),
            "model_complexity": pc.create_int(1),
            "use_prev_landmarks": pc.create_bool(True),
        }
        self._graph = Graph(_HANDS, "hand_landmarks", side)

    def __call__(self, rgb: NDArray[np.uint8]) -> list[F32]:
        """Hands in uint8 RGB (H, W, 3): each (21, 3) float32, x/y in plate pixels, z relative."""
        h, w = rgb.shape[:2]
        small = shrink(rgb, HAND_INPUT)
        g = self._graph
        out = g.run({"image": g._image_packet(small)})
        if not out:
            return []
        hands = []
        for lm_list in g._pg.get_proto_list(out[0]):
            pts = np.array([(p.x * w - 0.5, p.y * h - 0.5, p.z * w) for p in lm_list.landmark], np.float32)
            hands.append(pts)
        return hands

    def close(self) -> None:
        self._graph.close()


def hand_mask(hands: list[NDArray[np.floating]], shape: tuple[int, int]) -> F32:
    """Mask (H, W) in {0, 1} covering the hands (points in the mask's pixel space): palm + thick bones."""
    m = np.zeros(shape, np.uint8)
    for pts in hands:
        p = np.asarray(pts[:, :2], np.float64)
        width = float(np.linalg.norm(p[5] - p[17])) or 1.0  # knuckle span
        cv2.fillPoly(m, [np.round(p[PALM] * 16).astype(np.int32)], (1,), lineType=cv2.LINE_8, shift=4)
        thick = max(1, round(0.45 * width))
        for a, b in BONES:
            pa, pb = np.round(p[a]).astype(int), np.round(p[b]).astype(int)
            cv2.line(m, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), (1,), thick, lineType=cv2.LINE_8)
        for tip in (4, 8, 12, 16, 20):
            c = np.round(p[tip]).astype(int)
            cv2.circle(m, (int(c[0]), int(c[1])), thick // 2 + 1, (1,), -1)
    return m.astype(np.float32)
