"""The CLI end to end on real media, and every kind of bad input: one line, non-zero exit, nothing lost."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import assert_one_line_error, cli_here, media, run_cli
from faceplate.media import WriterSpec, open_plate, open_writer
from faceplate.store import ShotStore


@pytest.mark.slow
def test_extract_faces_align_end_to_end(tmp_path: Path) -> None:
    shot = tmp_path / "sh010"
    r = run_cli("extract", media("fr_two_people.jpg"), "--shot", shot)
    assert r.returncode == 0, r.stderr
    assert "1 shot(s), 2 track(s), 2 faces" in r.stdout
    r = run_cli("faces", shot, "--face", media("fr_obama.jpg"))
    assert r.returncode == 0, r.stderr
    match = [ln for ln in r.stdout.splitlines() if "← match" in ln]
    assert len(match) == 1
    with ShotStore.open(shot) as store:  # the match is the left face of the composite: Obama
        obama = store.track_faces(int(match[0].split()[1]))[0]
        assert obama.landmarks[:, 0].max() < 1126 / 2
    sheet = cv2.imread(str(shot / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] == 2 * 192  # one tile per track
    out = tmp_path / "aligned"
    r = run_cli("align", shot, "--face", media("fr_biden.jpg"), "--res", 128, "--type", "face", "-o", out)
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "align.json").read_text())
    assert len(meta["tracks"]) == 1 and len(meta["faces"]) == 1
    assert meta["tracks"] != [int(match[0].split()[1])]  # Biden is the other track
    crop = cv2.imread(str(out / meta["faces"][0]["file"]))
    assert crop.shape == (128, 128, 3)
    lm = np.load(out / "landmarks.npy")
    assert lm.shape == (1, 478, 3)
    # the crop is aligned: its landmarks sit on the template, and it is Biden's face, not Obama's
    from faceplate.align import template_in_crop
    from faceplate.analysis.identity import Embedder, distance
    from faceplate.review import reference_face

    assert np.linalg.norm(lm[0, :, :2] - template_in_crop(128, "face"), axis=1).mean() < 5.0  # Biden: 3.2 px
    rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
    crop_id = Embedder()(rgb, lm[0])
    assert distance(crop_id, reference_face(media("fr_biden.jpg")).descriptor) < 0.45
    assert distance(crop_id, reference_face(media("fr_obama.jpg")).descriptor) > 0.6


def test_align_video_track_resumes(tmp_path: Path, d18_shot: Path) -> None:
    out = tmp_path / "crops"
    r = run_cli("align", d18_shot, "--track", 0, "--frames", "10-29", "--res", 96, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "20 crop(s) written, 0 kept" in r.stdout
    (out / "000015_t0.png").unlink()
    r = run_cli("align", d18_shot, "--track", 0, "--frames", "10-29", "--res", 96, "-o", out)
    assert "1 crop(s) written, 19 kept" in r.stdout
    meta = json.loads((out / "align.json").read_text())
    assert [f["frame"] for f in meta["faces"]] == list(range(10, 30))
    # crops are stable over time: consecutive aligned frames barely differ (no jitter)
    a, b = (cv2.imread(str(out / f"0000{n}_t0.png")).astype(float) for n in (20, 21))
    assert np.abs(a - b).mean() < 6


@pytest.mark.slow
def test_bad_input_one_line_each(tmp_path: Path, d18_shot: Path) -> None:
    # a fresh process for the first case and the usage error; the rest in this one (cli_here), same checks
    assert_one_line_error(run_cli("extract", tmp_path / "nope.mov", "--shot", tmp_path / "s"), "does not exist")
    assert not (tmp_path / "s").exists()
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(media("lp_driving_d18.mp4").read_bytes()[:50_000])
    assert_one_line_error(cli_here("extract", bad, "--shot", tmp_path / "s"), "broken.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(media("lp_driving_d20.mp4").read_bytes()[:200_000])
    assert_one_line_error(cli_here("extract", cut, "--shot", tmp_path / "s"), "truncated")
    assert_one_line_error(cli_here("extract", tmp_path / "empty.####.exr", "--shot", tmp_path / "s"), "empty sequence")
    assert_one_line_error(
        cli_here("extract", media("fr_obama.jpg"), "--shot", tmp_path / "s", "--frames", "x"), "bad frame range"
    )
    assert_one_line_error(cli_here("extract", media("fr_obama.jpg"), "--shot", tmp_path / "s", "--tiles", "9"), "tiles")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(cli_here("extract", media("fr_obama.jpg"), "--shot", blocker / "s"), "cannot create shot")
    assert_one_line_error(cli_here("faces", tmp_path), "not a shot folder")
    assert_one_line_error(cli_here("align", d18_shot, "--track", 7, "-o", tmp_path / "a"), "no track 7")
    assert_one_line_error(cli_here("align", d18_shot, "-o", tmp_path / "a"), "exactly one of --track")
    assert_one_line_error(
        cli_here("align", d18_shot, "--track", 0, "--type", "full", "-o", tmp_path / "a"), "face_type"
    )
    assert_one_line_error(cli_here("align", d18_shot, "--track", 0, "-o", blocker / "a"), "cannot create")
    assert_one_line_error(
        cli_here("align", d18_shot, "--face", media("fr_obama.jpg"), "-o", tmp_path / "a"), "nobody in"
    )
    assert_one_line_error(run_cli("extract", "--bogus"), "No such option")


@pytest.mark.slow
def test_frames_without_faces(tmp_path: Path) -> None:
    # real frames of a real room with nobody in them: curtains and wall from the Biden photo
    rgb = open_plate(media("fr_biden.jpg")).read(0)
    seq = tmp_path / "room.####.png"
    with open_writer(WriterSpec(str(seq), 320, 240, format="png16")) as w:
        for n in range(1001, 1004):
            w.write(n, np.ascontiguousarray(rgb[40 * (n - 1000) : 40 * (n - 1000) + 240, :320]))
    shot = tmp_path / "shot"
    r = run_cli("extract", seq, "--shot", shot)
    assert_one_line_error(r, "no face found in frames 1001-1003")
    assert r.returncode == 3
    with ShotStore.open(shot) as store:  # the frames were still analysed and kept
        assert store.stored_frames() == {1001, 1002, 1003}


def test_existing_store_is_never_lost(tmp_path: Path, d18_shot: Path) -> None:
    shot = tmp_path / "shot"
    shutil.copytree(d18_shot, shot)
    before = (shot / "shot.sqlite").stat().st_size
    r = run_cli("extract", media("lp_driving_d20.mp4"), "--shot", shot)
    assert_one_line_error(r, "belongs to another plate")
    with ShotStore.open(shot) as store:
        assert len(store.stored_frames()) == 216
    assert (shot / "shot.sqlite").stat().st_size == before
