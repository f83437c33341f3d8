"""Person segmentation (MediaPipe's bundled selfie-segmentation model): where the person is in an image.

Used to keep hair work (de-age ``--hair``) off the background: hair and a grey studio wall can have the
same colour, a person mask tells them apart.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from faceplate.analysis.mp_graphs import Graph, mediapipe_module

_SEGMENT = """
input_stream: "IMAGE:image"
output_stream: "SEGMENTATION_MASK:mask"
node {
  calculator: "SelfieSegmentationCpu"
  input_side_packet: "MODEL_SELECTION:model_selection"
  input_stream: "IMAGE:image"
  output_stream: "SEGMENTATION_MASK:mask"
}
"""


class PersonSegmenter:
    """Soft person mask of an image; one graph per object (create one per worker)."""

    def __init__(self) -> None:
        pc = mediapipe_module()[3]
        self._graph = Graph(_SEGMENT, "mask", {"model_selection": pc.create_int(0)})

    def __call__(self, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        """uint8 RGB (H, W, 3) → float32 (H, W) in [0, 1], 1 on the person (hair and clothes included)."""
        g = self._graph
        out = g.run({"image": g.image_packet(rgb)})
        if not out:
            return np.zeros(rgb.shape[:2], np.float32)
        mask = np.asarray(g.getter.get_image_frame(out[0]).numpy_view(), np.float32)
        return np.ascontiguousarray(np.clip(mask.reshape(rgb.shape[:2]), 0, 1))

    def close(self) -> None:
        self._graph.close()
