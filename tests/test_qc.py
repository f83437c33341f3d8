"""``faceplate qc``: a clean beauty render of 14 real frames (d18) gets no flag, and copies of it with faults
put in on purpose (effect skipped, matte shifted 8 px, another person's face pasted, the face jittered on
alternate frames) are flagged at those frames by the flag meant for them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import assert_one_line_error, cli_here, extracted_clip, media
from faceplate.align import align_image, align_matrix, template_in_crop, unalign_image
from faceplate.config import RenderConfig
from faceplate.effects import EFFECTS
from faceplate.media.plate import open_plate
from faceplate.qc import QcConfig, latest_flags, run_qc
from faceplate.qc.measures import (
    localise,
    matte_edge_motion,
    matte_slide,
    nonfinite,
    outside_matte,
    outside_matte_codes,
    plate_flow,
)
from faceplate.qc.run import QcResult
from faceplate.render import render
from faceplate.review import reference_face
from faceplate.store import ShotStore

FRAMES = 14
SKIPPED = {4: "matte zero", 9: "matte kept"}  # effect skipped: comp = plate
MISSING = 12  # comp file not on disk
SHIFTED = 7  # matte moved 8 px right
SWAPPED = 10  # another person's face (Obama) aligned onto the face
JITTERED = (3, 5, 7, 9)  # the face inside the matte moved 4 px on alternate frames


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """14 frames of d18 extracted into root/shot and beauty-rendered to root/clean/comp.####.png (+ _matte)."""
    root = tmp_path_factory.mktemp("qc")
    clip = extracted_clip(root, "clip.mp4", FRAMES)
    cfg = RenderConfig(plate=str(clip), out=str(root / "clean" / "comp.####.png"), shot=root / "shot", format="png16")
    assert render(cfg, EFFECTS.get("beauty")()).written == FRAMES
    return root


def _png(folder: Path, name: str, frame: int) -> Path:
    return folder / f"{name}.{frame:04d}.png"


def _read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # BGR / grey uint16, written back as read


def _copy(root: Path, name: str) -> Path:
    out = root / name
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(root / "clean", out)
    return out


def _plate16(root: Path, frame: int) -> np.ndarray:
    with open_plate(root / "clip.mp4") as p:
        rgb = p.read(frame, native=True)
    return cv2.cvtColor(rgb.astype(np.uint16) * np.uint16(257), cv2.COLOR_RGB2BGR)


def _face_lm(root: Path, frame: int) -> np.ndarray:
    with ShotStore.open(root / "shot") as store:
        (row,) = store.faces_in_frame(frame)
    return row.best


def skipped(root: Path) -> Path:
    """The effect skipped on frames SKIPPED, and frame MISSING's comp not on disk."""
    out = _copy(root, "skipped")
    _png(out, "comp", MISSING).unlink()
    for f, how in SKIPPED.items():
        cv2.imwrite(str(_png(out, "comp", f)), _plate16(root, f))
        if how == "matte zero":
            cv2.imwrite(str(_png(out, "comp_matte", f)), np.zeros_like(_read(_png(out, "comp_matte", f))))
    return out


def shifted(root: Path) -> Path:
    out = _copy(root, "shifted")
    p = _png(out, "comp_matte", SHIFTED)
    cv2.imwrite(str(p), np.roll(_read(p), 8, axis=1))
    return out


def swapped(root: Path) -> Path:
    """Obama's face (fr_obama.jpg, another person) aligned onto the d18 face of frame SWAPPED, feathered in."""
    out = _copy(root, "swapped")
    ref = reference_face(media("fr_obama.jpg"))
    with open_plate(media("fr_obama.jpg")) as p:
        photo = p.read(0)  # float RGB [0, 1]
    res = 256
    crop = align_image(photo, align_matrix(ref.landmarks, res, "face"), res)
    hull = cv2.convexHull(template_in_crop(res, "face")[:468].astype(np.float32)).astype(np.int32)
    mask = cv2.GaussianBlur(cv2.fillConvexPoly(np.zeros((res, res), np.float32), hull, 1.0), (0, 0), 4)
    comp_path = _png(out, "comp", SWAPPED)
    comp = _read(comp_path)
    m = align_matrix(_face_lm(root, SWAPPED), res, "face")
    face = cv2.cvtColor(unalign_image(crop, m, comp.shape[:2]), cv2.COLOR_RGB2BGR) * 65535
    a = unalign_image(mask, m, comp.shape[:2])[..., None]
    cv2.imwrite(str(comp_path), np.clip(comp * (1 - a) + face * a + 0.5, 0, 65535).astype(np.uint16))
    return out


def jittered(root: Path) -> Path:
    """The comp's face moved 4 px right inside its matte on frames JITTERED (outside the matte untouched)."""
    out = _copy(root, "jittered")
    for f in JITTERED:
        comp = _read(_png(out, "comp", f)).astype(np.float32)
        a = _read(_png(out, "comp_matte", f)).astype(np.float32)[..., None] / 65535
        moved = np.roll(comp, 4, axis=1)
        cv2.imwrite(str(_png(out, "comp", f)), np.clip(comp + a * (moved - comp) + 0.5, 0, 65535).astype(np.uint16))
    return out


def qc(root: Path, folder: Path, **kw: object) -> QcResult:
    return run_qc(QcConfig(render=str(folder / "comp.####.png"), shot=root / "shot", **kw))


def flagged(res: QcResult, name: str) -> set[int]:
    return {fr.frame for fr in res.frames for f in fr.flags if f["flag"] == name}


def any_flag(res: QcResult) -> set[int]:
    return {fr.frame for fr in res.frames if fr.flags}


@pytest.fixture(scope="module")
def clean_qc(clean: Path) -> QcResult:
    return qc(clean, clean / "clean")


@pytest.mark.slow
def test_the_clean_render_gets_no_flag(clean_qc: QcResult) -> None:
    assert len(clean_qc.frames) == FRAMES
    assert not clean_qc.flag_names, [fr.flags for fr in clean_qc.frames if fr.flags]
    face = [fr.faces[0] for fr in clean_qc.frames]
    assert all(fq.landmarks is not None and fq.why is None for fq in face)
    measured = [fq.values["drift_reference"] for fq in face if fq.values.get("drift_reference") is not None]
    assert len(measured) == 2 and max(measured) < 0.3  # frames 0 and 12, near the plate's own descriptor
    assert max(fq.values["jitter"] or 0 for fq in face) < 0.5
    assert max(fq.values["matte_edge"] or 0 for fq in face) < 1.0


@pytest.mark.slow
def test_a_skipped_effect_and_a_missing_frame_are_flagged_at_their_frames(clean: Path) -> None:
    res = qc(clean, skipped(clean))
    assert flagged(res, "not_rendered") == set(SKIPPED)
    notes = {fr.frame: f["note"] for fr in res.frames for f in fr.flags if f["flag"] == "not_rendered"}
    assert notes == {4: "empty matte", 9: "comp = plate"}
    assert flagged(res, "missing_frame") == {MISSING}  # a failure, not a gap
    assert any_flag(res) == {*SKIPPED, MISSING}


@pytest.mark.slow
def test_a_matte_shifted_8px_on_one_frame_is_flagged_there(clean: Path) -> None:
    res = qc(clean, shifted(clean))
    assert flagged(res, "matte_edge") == {SHIFTED}
    assert any_flag(res) == {SHIFTED}
    (value,) = [f["value"] for f in res.frames[SHIFTED].flags if f["flag"] == "matte_edge"]
    assert value > 2 * QcConfig(render="x").matte_edge  # 8 px of a ~100 px eye distance


@pytest.mark.slow
def test_another_persons_face_is_flagged_as_identity_drift_on_that_frame(clean: Path) -> None:
    still = clean / "actor.png"  # a still of the same man as the --reference photo
    with open_plate(clean / "clip.mp4") as p:
        cv2.imwrite(str(still), cv2.cvtColor(p.read(FRAMES - 1, native=True), cv2.COLOR_RGB2BGR))
    res = qc(clean, swapped(clean), reference=still)
    assert res.reference == str(still)
    assert flagged(res, "drift_reference") == {SWAPPED}
    assert flagged(res, "drift_median") == {SWAPPED}
    assert any_flag(res) == {SWAPPED}
    fq = res.frames[SWAPPED].faces[0]
    assert fq.values["drift_reference"] is not None and fq.values["drift_reference"] > 0.6


@pytest.mark.slow
def test_a_jittered_face_is_flagged_on_the_jittered_frames(clean: Path) -> None:
    res = qc(clean, jittered(clean))
    moved = flagged(res, "flicker") | flagged(res, "jitter")
    assert set(JITTERED) <= moved <= set(range(JITTERED[0] - 1, JITTERED[-1] + 2))
    assert any_flag(res) <= set(range(JITTERED[0] - 1, JITTERED[-1] + 2))


@pytest.mark.slow
def test_report_files_exit_code_and_review_flags(clean: Path) -> None:
    out = shifted(clean)
    (out / "clip.faceplate").symlink_to(clean / "shot")  # where the render's record says its shot is
    r = cli_here("qc", out / "comp.####.png")  # no --shot: from the record
    assert r.returncode == 1, r.stderr
    assert "14 frames, 1 flagged" in r.stdout
    folder = clean / "shot" / "qc" / "shifted_comp.png"
    data = json.loads((folder / "qc.json").read_text())
    assert data["summary"]["flags"]["matte_edge"] == 1 and data["summary"]["fails"]
    assert {fr["frame"] for fr in data["frames"] if fr["flags"]} == {SHIFTED}
    html = (folder / "index.html").read_text()
    assert "plot_matte_edge.png" in html and f"thumb_{SHIFTED}.png" in html and "http" not in html
    thumb = cv2.imread(str(folder / f"thumb_{SHIFTED}.png"))
    assert thumb.shape[0] == 192 and thumb.shape[1] > 4 * 150  # plate | comp | difference | matte
    assert not QcConfig(render="x", fail_on=["none"]).fails({"matte_edge"})
    assert not QcConfig(render="x", fail_on=["jitter,flicker"]).fails({"matte_edge"})
    assert QcConfig(render="x", fail_on=["jitter,matte_edge"]).fails({"matte_edge"})
    marks = latest_flags([clean / "shot" / "qc"])
    assert {(f["frame"], f["track"], f["flag"]) for f in marks} >= {(SHIFTED, 0, "matte_edge")}
    assert {f["frame"] for f in marks} == {SHIFTED}
    from faceplate.app.config import ReviewConfig
    from faceplate.app.shotinfo import QC_FLAGS

    with ShotStore.open(clean / "shot") as store:
        assert QC_FLAGS["qc"](store, ReviewConfig(shot=clean / "shot")) == marks


@pytest.mark.slow
def test_a_report_folder_holding_other_files_is_refused_before_any_work(clean: Path) -> None:
    (clean / "taken").mkdir()
    (clean / "taken" / "notes.txt").write_text("mine")
    r = cli_here("qc", clean / "clean" / "comp.####.png", "--shot", clean / "shot", "-o", clean / "taken")
    assert_one_line_error(r, "--overwrite")
    assert (clean / "taken" / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_bad_input_is_one_line(tmp_path: Path, clean: Path) -> None:
    assert_one_line_error(cli_here("qc", tmp_path / "none.####.png", "--shot", clean / "shot"), "no frames")
    assert_one_line_error(cli_here("qc", tmp_path / "none.mov", "--shot", clean / "shot"), "does not exist")
    r = cli_here("qc", clean / "clean" / "comp.####.png", "--shot", clean / "shot", "--reference", tmp_path / "x.jpg")
    assert_one_line_error(r, "--reference")
    bare = tmp_path / "bare"
    shutil.copytree(clean / "clean", bare)
    for rec in bare.glob(".*.faceplate.json"):
        rec.unlink()
    r = cli_here("qc", bare / "comp.####.png")
    assert_one_line_error(r, "--shot")
    assert r.returncode == 2
    r = cli_here("qc", clean / "clean" / "comp.####.png", "--shot", clean / "shot", "--fail-on", "jitter,wobble")
    assert_one_line_error(r, "wobble", "flicker")
    assert r.returncode == 2
    (bare / "comp_matte.0000.png").rename(bare / "moved.png")
    for f in bare.glob("comp_matte.*.png"):
        f.unlink()
    assert_one_line_error(cli_here("qc", bare / "comp.####.png", "--shot", clean / "shot"), "--matte")


def test_the_help_shows_the_configs_defaults() -> None:
    text = " ".join(cli_here("qc", "--help").stdout.split())
    limits = (
        "drift_reference",
        "drift_median",
        "jitter",
        "flicker",
        "matte_edge",
        "outside_tolerance",
        "outside_pixels",
    )
    for name in (*limits, "identity_every"):
        shown = re.search(rf"--{name.replace('_', '-')} <\w+> [^[]*\[([\d.]+)\]", text)
        assert shown is not None and float(shown.group(1)) == QcConfig.model_fields[name].default, name


def test_localise_puts_a_glitch_on_its_frame_and_a_pop_where_it_lands() -> None:
    assert localise([None, 0.1, 5.0, 5.0, 0.1], 1.0) == [False, False, True, False, False]  # frame 2 glitched
    assert localise([None, 0.1, 5.0, 0.1, 0.1], 1.0) == [False, False, True, False, False]  # a pop into frame 2
    assert localise([None, 0.1, 0.1, 0.1, 5.0], 1.0) == [False, False, False, False, True]  # the last frame
    assert not any(localise([None, 0.9, 0.9], 1.0))


def test_matte_edge_motion_and_slide_read_the_shift_in_pixels() -> None:
    m = np.zeros((64, 64), np.float32)
    m[16:48, 16:48] = 1.0
    m = cv2.GaussianBlur(m, (0, 0), 2)
    still = np.zeros((64, 64, 2), np.float32)
    assert matte_edge_motion(m, m, still) == pytest.approx(0.0, abs=1e-6)
    assert matte_edge_motion(np.roll(m, 3, axis=1), m, still) == pytest.approx(1.5, rel=0.15)  # 2 of 4 edges
    assert matte_edge_motion(np.zeros_like(m), np.zeros_like(m), still) is None  # no edge: not a perfect score
    assert matte_slide(np.roll(m, 3, axis=1), m, still) == pytest.approx(3.0, rel=0.2)  # slid (Hann: ~15% under)
    assert matte_slide(m, m, still) == pytest.approx(0.0, abs=0.05)
    assert matte_slide(np.zeros_like(m), np.zeros_like(m), still) is None
    g = (np.indices((64, 64)).sum(0) % 7 * 36).astype(np.uint8)
    assert np.abs(plate_flow(g, g)).max() < 0.5


def test_nonfinite_and_outside_the_matte_count_pixels() -> None:
    plate = np.full((8, 8, 3), 0.5, np.float32)
    comp, matte = plate.copy(), np.zeros((8, 8), np.float32)
    matte[2:6, 2:6] = 1.0
    comp[3, 3] = 0.9  # inside the matte: fine
    comp[0, 0, 1] = 0.5 + 1 / 255  # outside, one code value
    comp[7, 7] = np.nan
    assert outside_matte(plate, comp, matte, 0.5) == 1
    assert outside_matte(plate, comp, matte, 1.5) == 0
    assert nonfinite(comp) == 1 and nonfinite(comp.astype(np.float16)) == 1 and nonfinite(plate) == 0


def test_outside_the_matte_in_codes_counts_as_in_floats() -> None:
    """An 8-bit plate against a 16-bit, half or float comp (RGB or RGBA): the same pixels."""
    rng = np.random.default_rng(0)
    plate = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    matte = np.zeros((16, 16), np.float32)
    matte[4:12, 4:12] = 0.5
    comp = plate.astype(np.float32) / 255
    comp[5:9, 5:9] += 0.2  # inside the matte
    comp[0, :5, 0] += 2 / 255  # 5 pixels outside, 2 codes
    comp[15, 15, 0] += 0.4 / 255  # within the tolerance
    want = outside_matte(plate.astype(np.float32) / 255, comp, matte, 0.5)
    assert want == 5
    rgba = np.dstack([comp, matte])
    for c, a in ((comp, matte), (rgba, matte)):
        assert outside_matte_codes(plate, (np.clip(c, 0, 1) * 65535 + 0.5).astype(np.uint16), a, 0.5) == want
        assert outside_matte_codes(plate, c.astype(np.float16), a.astype(np.float16), 0.5) == want
        assert outside_matte_codes(plate, c, a, 0.5) == want
