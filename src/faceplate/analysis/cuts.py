"""Camera-cut detection from tiny thumbnails (pure, streaming)."""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np
from numpy.typing import NDArray


class CutDetector:
    """Flags a cut when a frame differs from the previous one far more than recent frames did.

    The score is the mean absolute difference (0..255) of 32x18 HSV thumbnails; a cut needs
    ``score >= threshold`` and ``score >= ratio x`` the median of the last ``window`` scores.
    """

    def __init__(self, threshold: float = 30.0, ratio: float = 3.0, window: int = 12) -> None:
        self.threshold, self.ratio = threshold, ratio
        self._prev: NDArray[np.float32] | None = None
        self._recent: deque[float] = deque(maxlen=window)

    @staticmethod
    def thumb(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        h, w = rgb.shape[:2]
        step = max(1, min(h, w) // 72)  # cheap pre-decimation before the area resize
        small = cv2.resize(rgb[::step, ::step], (32, 18), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)

    def update(self, t: NDArray[np.float32]) -> tuple[float, bool]:
        """(score, is_cut) for the next frame's :meth:`thumb`; the first frame is never a cut."""
        if self._prev is None:
            self._prev = t
            return 0.0, False
        d = np.abs(t - self._prev)
        d[..., 0] = np.minimum(d[..., 0], 256 - d[..., 0])  # hue is circular
        score = float(d.mean())
        self._prev = t
        base = float(np.median(self._recent)) if self._recent else 0.0
        cut = score >= self.threshold and score >= self.ratio * max(base, 1.0)
        self._recent.append(score)
        return score, cut
