"""Frame-to-frame face tracking: landmarks follow each face; the detector runs every few frames.

Per frame: every live track re-fits its landmarks on a ROI predicted from its last landmarks (MediaPipe's
own tracking rule). The detector runs on a fixed cadence, on cuts, and whenever a track loses its face;
detections not explained by a live track start a track, or revive one lost within ``max_miss`` frames
at the same place. Identity-based linking across longer gaps happens afterwards (see finalize).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from faceplate.analysis.faces import Detection, landmark_box, roi_from_landmarks
from faceplate.geometry import Roi, iou

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]
LandmarkFn = Callable[[U8, Roi], F32 | None]
DetectFn = Callable[[U8], list[Detection]]


@dataclass(frozen=True)
class TrackerSettings:
    detect_every: int = 5  # frames between detector runs while every face is tracked
    max_miss: int = 8  # frames a lost face may stay unseen and keep its track
    duplicate_iou: float = 0.5  # two tracks this overlapped are one face: the younger one ends
    revive_iou: float = 0.25  # a new face this overlapped with a lost track's last place revives it


@dataclass
class Track:
    id: int
    landmarks: F32
    last_frame: int


@dataclass(frozen=True)
class TrackerState:
    """What a :class:`Tracker` carries from one frame to the next (stored with each commit: exact resumes)."""

    live: tuple[Track, ...]
    lost: tuple[Track, ...]
    since_detect: int  # frames since the detector last ran (10**9: run it on the next frame)
    next_id: int


@dataclass(frozen=True)
class Observation:
    """A face measured in one frame."""

    track: int
    frame: int
    source: str  # "detect" | "track"
    score: float | None
    landmarks: F32  # (478, 3) plate pixels


@dataclass
class Tracker:
    """Stateful per-shot tracker. Feed frames in order with :meth:`step`; call :meth:`cut` at cuts."""

    detect: DetectFn
    landmarks: LandmarkFn
    settings: TrackerSettings = field(default_factory=TrackerSettings)
    next_id: int = 0
    live: list[Track] = field(default_factory=list)
    lost: list[Track] = field(default_factory=list)
    _since_detect: int = 10**9

    def cut(self) -> None:
        """A new camera shot starts: no track continues across it."""
        self.live.clear()
        self.lost.clear()
        self._since_detect = 10**9

    def state(self) -> TrackerState:
        """A copy of the state after the last frame stepped (restore it with :meth:`restore`)."""
        return TrackerState(_copy(self.live), _copy(self.lost), self._since_detect, self.next_id)

    def restore(self, state: TrackerState) -> None:
        """Continue exactly where a :meth:`state` was taken: live and lost tracks, detector cadence, ids."""
        self.live, self.lost = list(_copy(state.live)), list(_copy(state.lost))
        self._since_detect = state.since_detect
        self.next_id = max([self.next_id, state.next_id, *[t.id + 1 for t in self.live + self.lost]])

    def step(self, frame: int, rgb: U8) -> list[Observation]:
        """Observations of every face in ``rgb`` (uint8 RGB, H x W x 3) at plate frame ``frame``."""
        out: list[Observation] = []
        still: list[Track] = []
        for t in self.live:
            lm = self.landmarks(rgb, roi_from_landmarks(t.landmarks))
            if lm is None:
                self.lost.append(t)
                continue
            t.landmarks, t.last_frame = lm, frame
            still.append(t)
        self.live = self._dedupe(still)
        out = [Observation(t.id, frame, "track", None, t.landmarks) for t in self.live]
        self._since_detect += 1
        if self.lost or not self.live or self._since_detect >= self.settings.detect_every:
            out = self._detect(frame, rgb, out)
            self._since_detect = 0
        self.lost = [t for t in self.lost if frame - t.last_frame <= self.settings.max_miss]
        return out

    def _dedupe(self, tracks: list[Track]) -> list[Track]:
        keep: list[Track] = []
        for t in sorted(tracks, key=lambda t: t.id):
            box = landmark_box(t.landmarks)
            if all(iou(box, landmark_box(k.landmarks)) < self.settings.duplicate_iou for k in keep):
                keep.append(t)
        return keep

    def _detect(self, frame: int, rgb: U8, out: list[Observation]) -> list[Observation]:
        boxes = [landmark_box(o.landmarks) for o in out]
        for det in self.detect(rgb):
            cx, cy = (det.box[0] + det.box[2]) / 2, (det.box[1] + det.box[3]) / 2
            hit = next((i for i, b in enumerate(boxes) if b[0] <= cx <= b[2] and b[1] <= cy <= b[3]), None)
            if hit is not None:  # an already-tracked face: record the detector's confirmation
                o = out[hit]
                out[hit] = Observation(o.track, frame, "detect", det.score, o.landmarks)
                continue
            lm = self.landmarks(rgb, det.roi())
            if lm is None:
                continue
            box = landmark_box(lm)
            if any(iou(box, b) >= self.settings.duplicate_iou for b in boxes):
                continue
            track = self._revive(box) or Track(self.next_id, lm, frame)
            if track.id == self.next_id:
                self.next_id += 1
            track.landmarks, track.last_frame = lm, frame
            self.live.append(track)
            boxes.append(box)
            out.append(Observation(track.id, frame, "detect", det.score, lm))
        return out

    def _revive(self, box: NDArray[np.float64]) -> Track | None:
        best, best_iou = None, self.settings.revive_iou
        for t in self.lost:
            v = iou(box, landmark_box(t.landmarks))
            if v >= best_iou:
                best, best_iou = t, v
        if best is not None:
            self.lost.remove(best)
        return best


def _copy(tracks: list[Track] | tuple[Track, ...]) -> tuple[Track, ...]:
    return tuple(Track(t.id, t.landmarks, t.last_frame) for t in tracks)
