"""Face analysis on real media: detection, 478 landmarks, identity, tracking, cuts, smoothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import media
from faceplate.analysis.faces import DETECTORS, Landmarker, interocular, landmark_box
from faceplate.analysis.identity import Embedder, cluster_identities, distance
from faceplate.analysis.smoothing import jitter, one_euro
from faceplate.config import ExtractConfig
from faceplate.errors import FaceNotFoundError
from faceplate.extract import extract
from faceplate.geometry import iou
from faceplate.media import open_plate
from faceplate.media.frames import parse_frame_range as parse_range
from faceplate.review import match_reference, reference_face
from faceplate.store import ShotStore


@pytest.fixture(scope="module")
def two_people() -> tuple[np.ndarray, list[np.ndarray]]:
    rgb = open_plate(media("fr_two_people.jpg")).read(0, display=True)
    detect, lmk = DETECTORS.get("mediapipe")(1, 0.5), Landmarker()
    faces = sorted((lmk(rgb, d.roi()) for d in detect(rgb)), key=lambda lm: float(lm[:, 0].mean()))
    return rgb, faces  # type: ignore[return-value]


def test_two_people_two_faces_with_478_landmarks(two_people: tuple[np.ndarray, list[np.ndarray]]) -> None:
    rgb, faces = two_people
    assert len(faces) == 2
    for lm in faces:
        assert lm.shape == (478, 3) and lm.dtype == np.float32
        assert lm[:, 0].min() >= 0 and lm[:, 0].max() < rgb.shape[1]
        assert 40 < interocular(lm) < 120  # both faces are ~170 px tall
    left, right = (landmark_box(lm) for lm in faces)
    assert left[2] < rgb.shape[1] / 2 < right[0]  # one face per half of the composite


def test_obama_matches_obama_not_biden(two_people: tuple[np.ndarray, list[np.ndarray]]) -> None:
    rgb, (left, right) = two_people
    emb = Embedder()
    obama_plate, biden_plate = emb(rgb, left), emb(rgb, right)
    obama_ref = reference_face(media("fr_obama.jpg")).descriptor
    biden_ref = reference_face(media("fr_biden.jpg")).descriptor
    assert distance(obama_plate, obama_ref) < 0.45
    assert distance(obama_plate, biden_ref) > 0.7
    assert distance(biden_plate, biden_ref) < 0.45
    assert distance(biden_plate, obama_ref) > 0.7


def test_wide_shot_faces_with_tiles() -> None:
    # first shot of the Hamilton clip: the singer standing and the pianist small at the left edge
    rgb = open_plate(media("fr_short_hamilton_clip.mp4")).read(10, display=True)
    plain = DETECTORS.get("mediapipe")(1, 0.5)(rgb)
    tiled = DETECTORS.get("mediapipe")(2, 0.5)(rgb)
    assert len(tiled) == 2 and len(plain) == 1  # the whole frame at 192 px misses the pianist; tiles find him
    assert iou(max(tiled, key=lambda d: d.box[0]).box, plain[0].box) > 0.7  # and the singer either way
    assert min(d.box[0] for d in tiled) < 100  # the pianist at x ~ 35 px


@pytest.mark.slow
def test_hamilton_shots_split_at_cuts(hamilton_shot: Path) -> None:
    with ShotStore.open(hamilton_shot) as store:
        shots = store.shots()
        # manifest: cuts at ~0.66 s, ~2.7 s and ~7.0 s at 29.97 fps
        assert [s[1] for s in shots] == [
            0,
            pytest.approx(20, abs=1),
            pytest.approx(81, abs=2),
            pytest.approx(210, abs=2),
        ]
        assert store.stored_frames() == set(range(275))  # every frame accounted for
        bounds = {s: (a, b) for s, a, b in shots}
        for t in store.tracks():
            a, b = bounds[t.shot]
            assert a <= t.first_frame <= t.last_frame <= b  # no track crosses a cut


@pytest.mark.slow
def test_hamilton_tracks_follow_one_person(hamilton_shot: Path) -> None:
    with ShotStore.open(hamilton_shot) as store:
        long_tracks = [t for t in store.tracks() if t.n_faces >= 20]
        assert len(long_tracks) >= 5
        for t in long_tracks:
            faces = [f for f in store.track_faces(t.id) if f.source != "interp"]
            boxes = [landmark_box(f.landmarks) for f in faces]
            for k in range(1, len(faces)):
                if faces[k].frame == faces[k - 1].frame + 1:  # consecutive frames: the box moves a little
                    assert iou(boxes[k - 1], boxes[k]) > 0.5, (t.id, faces[k].frame)
            samples = store.embeddings(t.id)
            embeds = [v for _, _, v in samples]
            others = [v for tr, _, v in store.embeddings() if tr != t.id]
            if len(embeds) > 1:  # samples of one track look more alike than samples of other tracks
                within = [distance(a, b) for i, a in enumerate(embeds) for b in embeds[i + 1 :]]
                across = [distance(a, b) for a in embeds for b in others]
                assert np.mean(within) < np.mean(across), (t.id, within)
                by_frame = {f.frame: f for f in faces}
                if min(interocular(by_frame[f].landmarks) for _, f, _ in samples) >= 30:  # big enough for dlib
                    assert np.mean(within) < 0.6, (t.id, within)
        # the singer (shots 0 and 2) is recognised from his photo; his tracks share one identity
        tracks, d = match_reference(store, reference_face(media("fr_lin-manuel-miranda.png")))
        spans = {t.id: t for t in store.tracks()}
        assert {spans[t].shot for t in tracks} == {0, 2} and d < 0.5
        assert len({spans[t].identity for t in tracks}) == 1


@pytest.mark.slow
def test_reference_that_matches_nobody(hamilton_shot: Path, tmp_path: Path) -> None:
    with ShotStore.open(hamilton_shot) as store, pytest.raises(FaceNotFoundError, match="nobody in"):
        match_reference(store, reference_face(media("lp_driving_d30.jpg")))
    with pytest.raises(FaceNotFoundError, match="no face found in the reference"):
        rgb = open_plate(media("fr_biden.jpg")).read(0)
        from faceplate.media import WriterSpec, open_writer

        with open_writer(WriterSpec(str(tmp_path / "wall.####.png"), 300, 200, format="png16")) as w:
            w.write(0, np.ascontiguousarray(rgb[:200, :300]))  # curtains and wall, no face
        reference_face(tmp_path / "wall.0000.png")


@pytest.mark.slow  # (extracts a 216-frame shot; tests/test_smoothing.py covers the smoother fast)
def test_smoothing_reduces_jitter_on_real_track(d18_shot: Path) -> None:
    with ShotStore.open(d18_shot) as store:
        (track,) = store.tracks()
        assert track.first_frame == 0 and track.last_frame == 215 and track.n_faces == 216
        faces = store.track_faces(track.id)
        raw = np.stack([f.landmarks for f in faces])
        smooth = np.stack([f.best for f in faces])
    scale = np.array([interocular(x) for x in raw])
    assert jitter(smooth, scale) < 0.5 * jitter(raw, scale)
    assert track.jitter_smooth is not None and track.jitter_raw is not None
    assert track.jitter_smooth < track.jitter_raw
    # smoothing must not drift: the smoothed face stays on the measured face (mean < 2% of eye distance)
    assert np.mean(np.linalg.norm(smooth[..., :2] - raw[..., :2], axis=-1) / scale[:, None]) < 0.02


def test_one_euro_tracks_a_step_without_lag_at_speed() -> None:
    x = np.concatenate([np.zeros(30), np.ones(30)])[:, None]
    y = one_euro(x, 30.0, min_cutoff=1.0, beta=5.0)
    assert abs(y[-1, 0] - 1.0) < 0.01 and y[31, 0] > 0.3


def test_identity_clusters_never_merge_coexisting_tracks() -> None:
    v = np.zeros(128, np.float32)
    labels = cluster_identities([(0, 0, 10), (1, 5, 15), (2, 20, 30)], {0: v, 1: v, 2: v}, 0.5)
    assert labels[0] != labels[1]  # same look but on screen together: two people
    assert labels[2] in (labels[0], labels[1])


def test_4k_frame_face_and_landmarks() -> None:
    import cv2

    hd = open_plate(media("fr_obama-1080p.jpg")).read(0, display=True)
    uhd = cv2.resize(hd, (3840, 2160), interpolation=cv2.INTER_CUBIC)
    lmk = Landmarker()
    (d_hd,) = DETECTORS.get("mediapipe")(1, 0.5)(hd)
    (d_uhd,) = DETECTORS.get("mediapipe")(1, 0.5)(uhd)
    a, b = lmk(hd, d_hd.roi()), lmk(uhd, d_uhd.roi())
    # the same face, at twice the coordinates: within 1% of the eye distance
    err = np.linalg.norm(b[:, :2] / 2 - a[:, :2], axis=1).mean() / interocular(a)
    assert err < 0.01, err


def test_hands_in_view_are_checked_every_other_frame(tmp_path: Path) -> None:
    """Once a hand is in view it is looked for every HANDS_IN_VIEW_EVERY frames and on the run's last frame (else
    every detect_every frames); a skipped frame holds out both neighbours' hands and their midpoints."""
    from faceplate.extract import HANDS_IN_VIEW_EVERY

    still = media("lp_driving_d30.jpg")  # her hand rests on her cheek: a 16-frame hold of the real photo
    for i in range(16):
        (tmp_path / "seq").mkdir(exist_ok=True)
        shutil.copy(still, tmp_path / "seq" / f"hold.{i:04d}.jpg")
    extract(ExtractConfig(plate=str(tmp_path / "seq" / "hold.####.jpg"), shot=tmp_path / "shot"))
    with ShotStore.open(tmp_path / "shot") as store:
        rows = store.conn.execute("SELECT frame, hands_checked FROM frames ORDER BY frame").fetchall()
        found = {f: len(store.hands_in_frame(f)) for f, _ in rows}
        near = store.hands_near(7)
    checked = [f for f, c in rows if c]
    assert len(rows) == 16 and HANDS_IN_VIEW_EVERY == 2
    assert all(found[f] == 1 for f in checked)  # the same hand, every time it was looked for
    assert checked == [*range(0, 16, 2), 15]  # seen at frame 0: every other frame after, and the last one
    assert all(found[f] == 0 for f, c in rows if not c)
    assert len(near) == 3  # frame 7: the hands of frames 6 and 8 and their midpoint (as a streamed render)


def test_skipped_frame_holds_out_the_hand_in_between() -> None:
    """A hand crossing the face between two checked frames is held out at its midpoint too, paired with the
    nearest hand of the later frame (not the other hand)."""
    from faceplate.analysis.hands import hand_mask, in_between

    rng = np.random.default_rng(0)
    left = rng.uniform(100, 160, (21, 3)).astype(np.float32)
    right = left + np.float32([400, 0, 0])
    moved = left + np.float32([120, 0, 0])  # the left hand, 120 px on
    out = in_between([left, right], [moved, right])
    assert len(out) == 6
    np.testing.assert_allclose(out[4], left + np.float32([60, 0, 0]))  # left with its own later self
    np.testing.assert_allclose(out[5], right)
    mask = hand_mask(out, (400, 700))
    assert mask[int(out[4][9, 1]), int(out[4][9, 0])] == 1  # where the hand is at the skipped frame
    assert in_between([], [moved]) == [moved] and in_between([left], []) == [left]


def test_hand_mask_covers_skin_coloured_fingers_seen_edge_on() -> None:
    """fr_short_hamilton_clip frame 130: the fingers along the jaw belong to a hand seen edge-on (its 2-D knuckle
    span is 7 px, a quarter of its width): the mask still covers the hand-labelled fingers and no labelled skin."""
    import cv2

    from faceplate.analysis.hands import HandLandmarker, hand_mask, hand_scale
    from labels import load_labels

    label = load_labels("fr_short_hamilton_clip_0130")[0]
    with open_plate(media(label.media)) as p:
        rgb = p.read(label.frame, display=True)
    finder = HandLandmarker()
    try:
        hands = finder(rgb)
    finally:
        finder.close()
    assert len(hands) == 2
    edge_on = min(hands, key=lambda h: float(np.linalg.norm(h[5, :2] - h[17, :2])))
    assert np.linalg.norm(edge_on[5, :2] - edge_on[17, :2]) < 12 and hand_scale(edge_on) > 25
    inner = lambda m: cv2.erode((m > 0.5).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # noqa: E731
    hand, skin, mask = inner(label.mask("hand")), inner(label.skin()), hand_mask(hands, rgb.shape[:2]) > 0
    assert (hand & mask).sum() >= 0.95 * hand.sum()  # was 48% (bones as wide as the 2-D knuckle span)
    assert not (skin & mask).any()


def test_graphs_start_without_mediapipe_solutions() -> None:
    """The graphs skip MediaPipe's ``solutions`` (matplotlib: ~0.8 s of every process start); the package still
    completes itself for any other code in the process that asks for it."""
    import subprocess
    import sys

    code = (
        "import sys; from faceplate.analysis.faces import Landmarker; lm = Landmarker(); "
        "print('matplotlib' in sys.modules); import mediapipe; "
        "print(mediapipe.__version__, mediapipe.solutions.face_mesh.FACEMESH_NUM_LANDMARKS_WITH_IRISES); lm.close()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "0.10.21", "478"]


@pytest.mark.slow
def test_embedder_process_gives_the_in_process_descriptors(two_people: tuple[np.ndarray, list[np.ndarray]]) -> None:
    """The helper-process embedder (used by streamed renders: dlib holds the GIL through a descriptor) returns
    the very descriptors of the in-process one, on both faces of a real photo, also when both are asked for
    before either is waited for; it reports bad input and a closed helper as errors."""
    from faceplate.analysis.identity import EmbedderProcess
    from faceplate.errors import ModelError

    rgb, faces = two_people
    here, there = Embedder(), EmbedderProcess()
    try:
        want = [here(rgb, lm) for lm in faces]
        for lm, a in zip(faces, want, strict=True):
            b = there(rgb, lm)
            assert b.dtype == np.float32 and b.shape == (128,)
            assert np.array_equal(a, b)
        first, second = (there.submit(rgb, lm) for lm in faces)  # both asked before either is waited for
        assert np.array_equal(second(), want[1]) and np.array_equal(first(), want[0])
        assert np.array_equal(first(), want[0])  # a ticket keeps its answer
        with pytest.raises(ValueError):
            there(rgb, faces[0][:68])
    finally:
        there.close()
    there.close()  # twice is fine
    with pytest.raises(ModelError):
        there(rgb, faces[0])


def test_hand_pass_submitted_ahead_finds_the_hands_it_finds_called() -> None:
    """HandLandmarker.submit / collect (the graph works while the caller goes on) gives, frame by frame, exactly
    what calling it gives, on real frames with hands in view (the graph tracks hands from frame to frame)."""
    from faceplate.analysis.hands import HandLandmarker

    with open_plate(media("fr_short_hamilton_clip.mp4")) as p:
        frames = [rgb for _, rgb in p.frames(parse_range("126-134"), display=True)]
    called, ahead = HandLandmarker(), HandLandmarker()
    try:
        want = [called(rgb) for rgb in frames]
        got = []
        for rgb in frames:
            ahead.submit(rgb)
            got.append(ahead.collect())
    finally:
        called.close()
        ahead.close()
    assert sum(len(h) for h in want) >= len(frames)  # hands in view
    assert [len(h) for h in got] == [len(h) for h in want]
    assert all(np.array_equal(a, b) for hs, gs in zip(want, got, strict=True) for a, b in zip(hs, gs, strict=True))


def test_identity_helper_needs_no_opencv() -> None:
    """The identity helper process (started by every streamed render) loads neither OpenCV nor MediaPipe; the
    mesh indices identity keeps for that are analysis.faces' own."""
    import subprocess
    import sys

    from faceplate.analysis import faces, identity

    assert (identity.CHIN, identity.N_LANDMARKS) == (faces.CHIN, faces.N_LANDMARKS)
    code = (
        "import sys, faceplate.analysis.embed_worker; from faceplate.analysis.identity import Embedder; "
        "print('cv2' in sys.modules, 'mediapipe' in sys.modules)"
    )  # what the helper imports before it loads dlib's models
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
