"""Renders driven through the CLI in their own processes: outputs that would overwrite the plate or each
other, resumes and reruns with other settings, stills and PNG alpha, Ctrl-C (exit 130, helpers end)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from conftest import assert_one_line_error, cli_here, media, run_cli
from faceplate.media import WriterSpec, open_plate, open_writer
from faceplate.media.frames import FrameRange
from faceplate.render import record_path

D18 = "lp_driving_d18.mp4"


@pytest.mark.slow
def test_outputs_never_overwrite_the_plate_or_each_other(tmp_path: Path) -> None:
    plate = tmp_path / "plate.mp4"
    shutil.copy(media(D18), plate)
    before = plate.read_bytes()
    assert_one_line_error(run_cli("beauty", plate, "-o", plate), "would overwrite the plate")
    assert_one_line_error(run_cli("beauty", plate, "-o", tmp_path / "c.mp4", "--matte", tmp_path / "c.mp4"),
                          "is the comp output too")  # fmt: skip
    assert_one_line_error(run_cli("beauty", plate, "-o", tmp_path / "c.####.exr", "--delta", tmp_path / "c.####.exr"),
                          "is the comp output too")  # fmt: skip
    assert plate.read_bytes() == before
    seq = tmp_path / "seq"
    with open_plate(media(D18)) as p, open_writer(WriterSpec(str(seq / "p.####.png"), 480, 480, format="png16")) as w:
        for n, img in p.frames(FrameRange(0, 2)):
            w.write(n, img)
    frames = {f: f.read_bytes() for f in seq.iterdir()}
    assert_one_line_error(run_cli("beauty", seq / "p.####.png", "-o", seq / "p.%04d.png"), "would overwrite the plate")
    assert_one_line_error(run_cli("beauty", seq / "p.####.png", "-o", seq / "p.0001.png"), "would overwrite the plate")
    assert {f: f.read_bytes() for f in seq.iterdir()} == frames


@pytest.mark.slow
def test_rerun_with_other_settings_needs_overwrite(d18_shot: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.####.png"  # (in this process: the test_outputs_* cases above run a fresh one)
    args = (media(D18), "-o", out, "--shot", d18_shot, "--frames", "0-3")
    assert cli_here("beauty", *args).returncode == 0
    first = (tmp_path / "c.0002.png").read_bytes()
    r = cli_here("beauty", *args)
    assert r.returncode == 0 and "0 frame(s) written, 4 already written" in r.stdout  # same settings: resumed
    assert_one_line_error(cli_here("beauty", *args, "--strength", "0.3"), "other settings", "strength 0.7 → 0.3",
                          "--overwrite")  # fmt: skip
    assert_one_line_error(cli_here("deage", *args), "another effect (beauty, not deage)")
    assert (tmp_path / "c.0002.png").read_bytes() == first  # refused: nothing touched
    r = cli_here("beauty", *args, "--strength", "0.3", "--overwrite")
    assert r.returncode == 0 and "4 frame(s) written" in r.stdout, r.stderr
    assert (tmp_path / "c.0002.png").read_bytes() != first
    assert json.loads(record_path(str(out)).read_text())["settings"]["settings"]["strength"] == 0.3
    foreign = tmp_path / "mine.####.png"  # frames the user made by other means
    shutil.copy(tmp_path / "c.0001.png", tmp_path / "mine.0001.png")
    assert_one_line_error(cli_here("beauty", media(D18), "-o", foreign, "--shot", d18_shot, "--frames", "0-3"),
                          "not made by this render")  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_exits_130_with_one_line(tmp_path: Path, d18_shot: Path) -> None:
    """A Ctrl-C anywhere (here: while the analysis models load) exits 130 and says what is kept."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for args in (["extract", str(media("fra_orig.mp4")), "--shot", str(tmp_path / "s")],  # 1080p: ~20 s
                 ["align", str(d18_shot), "--track", "0", "--res", "1024", "-o", str(tmp_path / "crops")]):  # fmt: skip
        proc = subprocess.Popen([sys.executable, "-m", "faceplate", *args], stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(2.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert proc.returncode == 130 and len(lines) == 1 and "interrupted" in lines[0], (args, err)
        assert "kept" in lines[0] or "stored" in lines[0] or "nothing" in lines[0], lines[0]


@pytest.mark.slow
def test_still_plate_to_a_single_file_and_face_errors(tmp_path: Path) -> None:
    """A one-frame plate renders to ``-o still.png`` (no #### needed), keeping no matte in its alpha."""
    r = run_cli("beauty", media("lp_driving_d19.jpg"), "-o", tmp_path / "still.png")
    assert r.returncode == 0, r.stderr
    with open_plate(tmp_path / "still.png") as comp, open_plate(media("lp_driving_d19.jpg")) as plate:
        assert not comp.info.has_alpha  # the matte goes to the sidecar, the comp keeps the plate's (no) alpha
        diff = np.abs(comp.read(0) - plate.read(0)).max(axis=2)
    with open_plate(tmp_path / "still_matte.png") as m:
        matte = m.read(0)[..., 0]
    assert diff[matte > 0.5].mean() > 1e-3 and diff[matte == 0].max() < 1e-3  # retouched inside the matte only
    assert_one_line_error(cli_here("beauty", media(D18), "-o", tmp_path / "c.mp4", "--face", tmp_path),
                          "is a folder", "reference image")  # fmt: skip
    assert_one_line_error(cli_here("beauty", media(D18), "-o", tmp_path / "c.mp4", "--face", tmp_path / "nope.jpg"),
                          "reference image", "does not exist")  # fmt: skip


@pytest.mark.slow
def test_png_comp_keeps_the_plates_own_alpha(tmp_path: Path) -> None:
    """An RGBA PNG plate: the comp carries the plate's alpha untouched, the matte goes to its sidecar."""
    with open_plate(media("lp_driving_d19.jpg")) as still:
        rgb = still.read(0)
    alpha = np.tile(np.linspace(0.2, 1.0, 720, dtype=np.float32), (720, 1))
    with open_writer(WriterSpec(str(tmp_path / "p.####.png"), 720, 720, format="png16")) as w:
        w.write(1, np.dstack([rgb, alpha]))
    r = run_cli("beauty", tmp_path / "p.####.png", "-o", tmp_path / "out" / "c.####.png")
    assert r.returncode == 0, r.stderr
    comp = oiio.ImageBuf(str(tmp_path / "out" / "c.0001.png")).get_pixels(oiio.FLOAT)
    plate = oiio.ImageBuf(str(tmp_path / "p.0001.png")).get_pixels(oiio.FLOAT)
    assert comp.shape == (720, 720, 4)
    np.testing.assert_array_equal(comp[..., 3], plate[..., 3])  # the plate's alpha, not the matte
    matte = oiio.ImageBuf(str(tmp_path / "out" / "c_matte.0001.png")).get_pixels(oiio.FLOAT)
    assert matte.max() > 0.9 and np.abs(comp[..., :3] - plate[..., :3])[matte[..., 0] > 0.5].mean() > 1e-3


@pytest.mark.slow
def test_ctrl_c_in_a_one_pass_render_exits_130_and_ends_its_helper(tmp_path: Path) -> None:
    """Ctrl-C while a fresh shot is analysed and rendered in one pass: exit 130 with one line, and the identity
    helper process (render.stream's embedder) ends with it."""
    tag = f"faceplate-test-{os.getpid()}-{time.time_ns()}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FACEPLATE_TEST_TAG": tag}
    cmd = [sys.executable, "-m", "faceplate", "beauty", str(media("fra_orig.mp4")), "-o", str(tmp_path / "c.mp4")]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)

    def tagged() -> list[int]:
        pids = []
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and int(d.name) != proc.pid and tag.encode() in (d / "environ").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                continue
        return pids

    deadline = time.time() + 60
    while not tagged() and time.time() < deadline:  # the helper starts with the analysis models
        time.sleep(0.2)
    assert tagged(), "no identity helper process started"
    time.sleep(3.0)  # into the render
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 130 and len(lines) == 1 and "interrupted" in lines[0], err
    deadline = time.time() + 10
    while tagged() and time.time() < deadline:
        time.sleep(0.2)
    assert not tagged()
