"""Shared fixtures: the real media in ../shared/media and shots extracted once per session."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from faceplate.config import ExtractConfig
from faceplate.extract import extract

REPO = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("FACEPLATE_MEDIA", REPO.parent / "shared" / "media"))


#: Seconds each of the largest test files takes on 2 cores (a full run's --durations, 2026-12-02). Files run
#: whole on one xdist worker (--dist loadfile) in collection order: the longest go first, so the run does not
#: end with one worker on a long file while the other idles. Unlisted files keep their order, after these.
FILE_SECONDS = {"test_beauty.py": 71, "test_keyframes.py": 60, "test_swap.py": 53, "test_deage.py": 39,
                "test_render_cli.py": 29, "test_store_safety.py": 26, "test_reference_deage.py": 26,
                "test_review_app.py": 26, "test_render.py": 22, "test_analysis.py": 20, "test_store.py": 19,
                "test_cli.py": 18, "test_review_tune.py": 16, "test_qc.py": 15}  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first (stable: a file's tests keep their order)."""
    items.sort(key=lambda it: -FILE_SECONDS.get(it.path.name, 0))


def media(name: str) -> Path:
    path = MEDIA / name
    if not path.is_file():
        raise FileNotFoundError(f"test media {path} is missing (set FACEPLATE_MEDIA to the shared/media folder)")
    return path


@pytest.fixture(scope="session")
def manifest() -> dict[str, dict]:
    data = json.loads(media("manifest.json").read_text())
    return {f["file"]: f for f in data["files"]}


@pytest.fixture(scope="session")
def hamilton_shot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fr_short_hamilton_clip.mp4 extracted once (4 camera shots, 1-4 faces each)."""
    shot = tmp_path_factory.mktemp("hamilton")
    extract(ExtractConfig(plate=str(media("fr_short_hamilton_clip.mp4")), shot=shot))
    return shot


@pytest.fixture(scope="session")
def d18_shot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lp_driving_d18.mp4 (one man, frontal, studio) extracted once."""
    shot = tmp_path_factory.mktemp("d18")
    extract(ExtractConfig(plate=str(media("lp_driving_d18.mp4")), shot=shot))
    return shot


def run_cli(*args: str | Path, timeout: float = 300, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``python -m faceplate ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "faceplate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kw,  # type: ignore[arg-type]
    )


def cli_here(*args: str | Path | int) -> subprocess.CompletedProcess[str]:
    """Run ``faceplate ARGS`` in this process (``cli.main``, exit code and both streams captured) as
    ``run_cli`` does in a fresh one: for the many bad-input cases whose checks come before any real work,
    where starting a Python with torch for each would cost seconds. Each file keeps subprocess cases too."""
    from faceplate.cli import main

    out, err, code, shown = io.StringIO(), io.StringIO(), 0, warnings.showwarning
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main([str(a) for a in args])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        warnings.showwarning = shown
    return subprocess.CompletedProcess(["faceplate", *map(str, args)], code, out.getvalue(), err.getvalue())


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Non-zero exit, exactly one line on stderr, mentioning each needle, and no traceback."""
    assert proc.returncode != 0, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def write_clip(src: Path, out: Path, frames: int) -> list[np.ndarray]:
    """The first ``frames`` frames of ``src`` re-encoded (H.264, near lossless); returns them as decoded RGB."""
    with av.open(str(src)) as c:
        rgb = [f.to_ndarray(format="rgb24") for f, _ in zip(c.decode(video=0), range(frames), strict=False)]
    with av.open(str(out), "w") as o:
        s = o.add_stream("libx264", rate=30, options={"crf": "8", "preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = rgb[0].shape[1], rgb[0].shape[0], "yuv420p"
        for img in rgb:
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                o.mux(pkt)
        for pkt in s.encode():
            o.mux(pkt)
    return rgb


def _jiggle(net: Any, seed: int) -> None:
    """Seeded random weights: an untrained network that still changes the face (for contract tests)."""
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.05)


def tiny_models(root: Path) -> dict[str, Path]:
    """A tiny swap model and a tiny keyframe model with seeded random weights, saved under ``root``."""
    from faceplate.models import swap_checkpoint as checkpoint
    from faceplate.models.keyframes import KeyframeSettings, save_model
    from faceplate.models.swap import SwapArch, SwapModel

    swap = SwapModel(SwapArch(res=64, ae_dims=32, e_dims=8, d_dims=8, d_mask_dims=4))
    _jiggle(swap, 1)
    checkpoint.save(root / "swap", swap, None, checkpoint.TrainState())
    s = KeyframeSettings(res=64, width=8)
    net = s.net()
    _jiggle(net, 2)
    save_model(root / "keyframes", net, s, {})
    return {"swap": root / "swap", "keyframes": root / "keyframes"}


def extracted_clip(root: Path, name: str, frames: int) -> Path:
    """The first ``frames`` frames of d18 as ``root/name`` (:func:`write_clip`), extracted into ``root/shot``;
    returns the clip."""
    clip = root / name
    write_clip(media("lp_driving_d18.mp4"), clip, frames)
    extract(ExtractConfig(plate=str(clip), shot=root / "shot"))
    return clip
