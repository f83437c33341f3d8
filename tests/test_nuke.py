"""``faceplate nuke``: the Nuke script of a render's layered EXRs, against a golden file and parsed back.

The synthetic layers sequence is made here to the deliverables contract (64x48, 3 frames, the channels and
header attributes ``--deliver layers`` writes). The golden file holds the script with the temporary folder
written as ``ROOT`` and the version as ``VERSION``; after a deliberate change to the script, regenerate it
with ``FACEPLATE_REGEN_GOLDEN=1 .venv/bin/python -m pytest -n 0 tests/test_nuke.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from conftest import assert_one_line_error, cli_here, extracted_clip
from faceplate import __version__
from faceplate.deliver.nuke import NukeConfig, write_nuke_script
from faceplate.media.plate import PlateInfo
from faceplate.store import ShotStore

GOLDEN = Path(__file__).parent / "data" / "nuke" / "simple.nk"
W, H, RES = 64, 48, 16
FRAMES = (1001, 1002, 1003)
CS = "Linear Rec.709 (sRGB)"


def similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    """(2, 3) aligned→plate matrix (OpenCV px): scale, rotate, then move."""
    a = np.radians(degrees)
    c, s = scale * np.cos(a), scale * np.sin(a)
    return np.array([[c, -s, tx], [s, c, ty]])


def faces_on(frame: int) -> list[dict]:
    """Track 1 on every frame, track 2 on the first two (the third frame has no key for it)."""
    k = frame - FRAMES[0]
    out = [{"track": 1, "res": RES, "aligned_to_plate": similarity(1.25, 3.0 * k, 4.0 + k, 6.0 + 0.5 * k).tolist()}]
    if k < 2:
        out.append({"track": 2, "res": RES, "aligned_to_plate": similarity(0.9, -10.0, 36.0 - k, 10.0).tolist()})
    return out


def write_exr(path: Path, channels: list[str], attrs: dict[str, object]) -> None:
    spec = oiio.ImageSpec(W, H, len(channels), oiio.HALF)
    spec.channelnames = tuple(channels)
    spec.attribute("compression", "zip")
    for k, v in attrs.items():
        if k == "FramesPerSecond":
            spec.attribute(k, oiio.TypeDesc("rational"), v)
        elif k == "smpte:TimeCode":
            spec.attribute(k, oiio.TypeDesc("timecode"), v)
        else:
            spec.attribute(k, v)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec) and out.write_image(np.zeros((H, W, len(channels)), np.float32))
    out.close()


def make_render(root: Path, plate: str, shot: Path, tracks: list[int], patches: bool = True) -> str:
    """A fake EXR comp render with ``--deliver layers`` (+ patches): record, layers frames, patch folders."""
    root.mkdir(parents=True, exist_ok=True)
    comp = str(root / "comp.####.exr")
    stmaps = {("stmap" if len(tracks) == 1 else f"stmap_t{t}"): t for t in tracks}
    channels = ["R", "G", "B", "A", "face.R", "face.G", "face.B", "face.A", "matte.A", "delta.R", "delta.G",
                "delta.B", *(f"{n}.{c}" for n in stmaps for c in "uv"), "occlusion.A"]  # fmt: skip
    record = {"effect": "beauty", "settings": {"strength": 0.7}}
    for f in FRAMES:
        faces = [x for x in faces_on(f) if x["track"] in tracks]
        write_exr(root / f"comp_layers.{f:04d}.exr", channels, {
            "faceplate/version": __version__, "faceplate/plate": plate, "faceplate/shot": str(shot),
            "faceplate/frame": f, "faceplate/effect": "beauty", "faceplate/record": json.dumps(record),
            "faceplate/tracks": json.dumps(tracks), "faceplate/faces": json.dumps(faces),
            "faceplate/stmap": json.dumps({"convention": "nuke", "origin": "bottom-left", "pixel_centre": 0.5,
                                           "layers": stmaps}),
            "oiio:ColorSpace": CS, "FramesPerSecond": (24, 1), "smpte:TimeCode": (0, 0)})  # fmt: skip
        for x in faces if patches else []:
            (root / "comp_patches" / f"t{x['track']}").mkdir(parents=True, exist_ok=True)
            (root / "comp_patches" / f"t{x['track']}" / f"{f:06d}.png").write_bytes(b"")  # only the folder is read
    (root / ".comp.####.exr.faceplate.json").write_text(json.dumps({"role": "comp", "plate": plate, **record}))
    return comp


@pytest.fixture(scope="module")
def sequence_render(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """Two tracks over a 3-frame EXR sequence plate (frames 1001-1003), no shot store: (root, comp, script)."""
    root = tmp_path_factory.mktemp("nuke")
    for f in FRAMES:
        write_exr(root / f"plate.{f:04d}.exr", ["R", "G", "B"], {"oiio:ColorSpace": CS})
    comp = make_render(root / "render", str(root / "plate.####.exr"), root / "no_shot", [1, 2])
    return root, comp, write_nuke_script(NukeConfig(render=comp, out=root / "shot.nk"))


# ---------------------------------------------------------------------------- a small .nk parser


@dataclass
class Parsed:
    cls: str
    knobs: dict[str, str]
    inputs: list[str | None]


def unquote(v: str) -> str:
    return re.sub(r"\\(.)", r"\1", v[1:-1]) if v.startswith('"') else v


def parse_nk(text: str) -> tuple[dict[str, str], list[list[str]], dict[str, Parsed]]:
    """Root knobs, add_layer lists and {name: node} with inputs resolved through the script's stack
    (a node pops its inputs: the top of the stack is input 0)."""
    root: dict[str, str] = {}
    layers: list[list[str]] = []
    nodes: dict[str, Parsed] = {}
    stack: list[str | None] = []
    saved: dict[str, str | None] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith(("#", "version ")):
            continue
        if m := re.fullmatch(r"add_layer \{(.*)\}", line):
            layers.append(m.group(1).split())
        elif m := re.fullmatch(r"set (\w+) \[stack 0\]", line):
            saved[m.group(1)] = stack[-1]
        elif m := re.fullmatch(r"push \$(\w+)", line):
            stack.append(saved[m.group(1)])
        elif line == "push 0":
            stack.append(None)
        elif m := re.fullmatch(r"(\w+) \{", line):
            knobs: dict[str, str] = {}
            for k in lines:
                if k == "}":
                    break
                key, _, value = k.strip().partition(" ")
                knobs[key] = value
            n = int(knobs.get("inputs", "1"))
            inputs = [stack.pop() for _ in range(n)]
            if m.group(1) == "Root":
                root = knobs
                continue
            nodes[knobs["name"]] = Parsed(m.group(1), knobs, inputs)
            stack.append(knobs["name"])
        else:
            raise AssertionError(f"unexpected line {line!r}")
    return root, layers, nodes


def curves(value: str) -> list[dict[int, float]]:
    """``{{curve x1 2 x2 3} {curve x1 4}}`` → [{1: 2.0, 2: 3.0}, {1: 4.0}]."""
    out = []
    for body in re.findall(r"\{curve ([^}]*)\}", value):
        tok = body.split()
        out.append({int(tok[i][1:]): float(tok[i + 1]) for i in range(0, len(tok), 2)})
    return out


def expected_corners(m: np.ndarray, res: int, height: int) -> np.ndarray:
    """The crop's corners as Nuke sees them (pixel edges, y up: (0, 0), (R, 0), (R, R), (0, R)) taken to
    OpenCV px of the crop (x - 0.5, R - y - 0.5), through ``m``, and back to Nuke's plate (x + 0.5, H - y - 0.5)."""
    nk = np.array([[0, 0], [res, 0], [res, res], [0, res]], np.float64)
    cv = np.stack([nk[:, 0] - 0.5, res - nk[:, 1] - 0.5], axis=1)
    p = cv @ m[:, :2].T + m[:, 2]
    return np.stack([p[:, 0] + 0.5, height - p[:, 1] - 0.5], axis=1)


def transform_corners(knobs: dict[str, str], frame: int, res: int) -> np.ndarray:
    """The crop's Nuke corners through a Transform as Nuke applies it (order SRT, about ``center``):
    p' = translate + center + R(rotate) * scale * (p - center)."""
    (tx, ty), (rot,), (sx, sy) = ([c[frame] for c in curves(knobs[k])] for k in ("translate", "rotate", "scale"))
    centre = np.array([float(v) for v in knobs["center"].strip("{}").split()])
    a = np.radians(rot)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.diag([sx, sy])
    nk = np.array([[0, 0], [res, 0], [res, res], [0, res]], np.float64)
    return (nk - centre) @ r.T + centre + [tx, ty]


# ---------------------------------------------------------------------------- the script


def normalised(text: str, root: Path) -> str:
    return text.replace(str(root), "ROOT").replace(f"faceplate {__version__} ", "faceplate VERSION ")


def test_script_matches_golden_file(sequence_render: tuple[Path, str, Path]) -> None:
    root, _, script = sequence_render
    text = normalised(script.read_text(), root)
    if os.environ.get("FACEPLATE_REGEN_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_same_input_same_bytes(sequence_render: tuple[Path, str, Path]) -> None:
    root, comp, script = sequence_render
    again = write_nuke_script(NukeConfig(render=comp, out=root / "again.nk"))
    assert again.read_text().replace("again.nk", "shot.nk") == script.read_text()


def test_reads_root_and_layers(sequence_render: tuple[Path, str, Path]) -> None:
    root, _, script = sequence_render
    knobs, layers, nodes = parse_nk(script.read_text())
    assert (knobs["first_frame"], knobs["last_frame"], knobs["fps"]) == ("1001", "1003", "24")
    assert unquote(knobs["format"]) == f"{W} {H} 0 0 {W} {H} 1 faceplate_plate"
    plate, lay = nodes["Read_plate"].knobs, nodes["Read_layers"].knobs
    assert unquote(plate["file"]) == str(root / "plate.####.exr")
    assert (plate["first"], plate["last"], unquote(plate["colorspace"]), plate["raw"]) == ("1001", "1003", CS, "true")
    assert "frame_mode" not in plate  # a sequence is numbered as on disk
    assert unquote(lay["file"]) == str(root / "render" / "comp_layers.####.exr")
    assert (lay["first"], lay["last"]) == ("1001", "1003")
    assert nodes["Read_plate"].inputs == [] and nodes["Read_layers"].inputs == []
    assert ["face", "face.red", "face.green", "face.blue", "face.alpha"] in layers
    assert ["stmap_t2", "stmap_t2.u", "stmap_t2.v"] in layers and ["matte", "matte.alpha"] in layers
    for t in (1, 2):
        p = nodes[f"Read_patches_t{t}"].knobs
        assert unquote(p["file"]) == str(root / "render" / "comp_patches" / f"t{t}" / "######.png")
    assert (nodes["Read_patches_t2"].knobs["first"], nodes["Read_patches_t2"].knobs["last"]) == ("1001", "1002")


def test_shuffles_stmaps_and_merge_wiring(sequence_render: tuple[Path, str, Path]) -> None:
    _, _, script = sequence_render
    _, _, nodes = parse_nk(script.read_text())
    for layer in ("face", "matte", "delta", "occlusion"):
        assert nodes[f"Shuffle_{layer}"].knobs["in"] == layer
        assert nodes[f"Shuffle_{layer}"].inputs == ["Read_layers"]
    assert nodes["Shuffle_matte"].knobs["red"] == "alpha"
    merge = nodes["Merge_face_over_plate"]
    assert merge.cls == "Merge2" and merge.knobs["operation"] == "over"
    assert merge.inputs == ["Read_plate", "Shuffle_face"]  # input 0 is B (the plate), input 1 is A (the face)
    assert nodes["OCIO_plate_to_working"].inputs == ["Merge_face_over_plate"]
    for t in (1, 2):
        st = nodes[f"STMap_t{t}"]
        assert st.knobs["uv"] == f"stmap_t{t}"
        assert st.inputs == [f"Premult_patches_t{t}", "Read_layers"]  # src, then the stmap (uv) input
        assert nodes[f"Premult_patches_t{t}"].inputs == [f"Read_patches_t{t}"]
        assert nodes[f"CornerPin_t{t}"].inputs == [f"Premult_patches_t{t}"]
    assert nodes["Merge_patch_t1"].inputs == ["Read_plate", "STMap_t1"]
    assert nodes["Merge_patch_t2"].inputs == ["Merge_patch_t1", "STMap_t2"]
    positions = {(int(n.knobs["xpos"]), int(n.knobs["ypos"])) for n in nodes.values()}
    assert len(positions) == len(nodes)  # no two nodes stacked on each other


def test_corner_pin_keys_follow_each_frames_matrix(sequence_render: tuple[Path, str, Path]) -> None:
    _, _, script = sequence_render
    _, _, nodes = parse_nk(script.read_text())
    for t in (1, 2):
        pin = nodes[f"CornerPin_t{t}"].knobs
        assert [pin[f"from{i}"] for i in range(1, 5)] == ["{0 0}", f"{{{RES} 0}}", f"{{{RES} {RES}}}", f"{{0 {RES}}}"]
        keyed = [f for f in FRAMES if any(x["track"] == t for x in faces_on(f))]
        for i in range(4):
            xs, ys = curves(pin[f"to{i + 1}"])
            assert sorted(xs) == sorted(ys) == keyed
            for f in keyed:
                m = np.array(next(x for x in faces_on(f) if x["track"] == t)["aligned_to_plate"])
                want = expected_corners(m, RES, H)[i]
                assert abs(xs[f] - want[0]) < 1e-4 and abs(ys[f] - want[1]) < 1e-4, (t, f, i)
        move = nodes[f"Transform_t{t}"]
        assert move.inputs == [f"Premult_patches_t{t}"]
        for f in keyed:
            m = np.array(next(x for x in faces_on(f) if x["track"] == t)["aligned_to_plate"])
            assert np.abs(transform_corners(move.knobs, f, RES) - expected_corners(m, RES, H)).max() < 2e-4


def test_pixel_centre_convention_on_a_pure_move(tmp_path: Path) -> None:
    """A crop moved by (tx, ty) in OpenCV px: its top-left pixel's centre is plate px (tx, ty), so the crop
    covers Nuke x in [tx - 0.5 + 0.5, tx + R] and y in [H - ty - R, H - ty]: to1 = (tx, H - ty - R)."""
    from faceplate.deliver.nuke import plate_corners

    got = plate_corners(np.array([[1.0, 0, 10], [0, 1.0, 5]]), RES, H)
    assert np.allclose(got, [[10, H - 5 - RES], [10 + RES, H - 5 - RES], [10 + RES, H - 5], [10, H - 5]])


def test_video_plate_starts_at_its_plate_frame(tmp_path: Path) -> None:
    """A video plate whose first frame is numbered 1001 (from the shot store): Nuke's Read starts it there."""
    shot = tmp_path / "shot"
    info = PlateInfo(str(tmp_path / "plate.mov"), "video", W, H, Fraction(24), 1001, 50, CS, 8, "h264", False, False)
    ShotStore.create(shot, info).close()
    comp = make_render(tmp_path, str(tmp_path / "plate.mov"), shot, [1], patches=False)
    script = write_nuke_script(NukeConfig(render=comp, out=tmp_path / "v.nk"))
    _, layers, nodes = parse_nk(script.read_text())
    plate = nodes["Read_plate"].knobs
    assert (plate["first"], plate["last"], unquote(plate["frame_mode"]), unquote(plate["frame"])) == (
        "1", "50", "start at", "1001")  # fmt: skip
    assert ["stmap", "stmap.u", "stmap.v"] in layers
    assert not any(n.startswith(("STMap", "Read_patches")) for n in nodes)  # no patches: no STMap branch
    assert nodes["CornerPin_t1"].inputs == [None]  # the pin waits for an aligned element


# ---------------------------------------------------------------------------- bad input


def test_bad_input_is_one_line(sequence_render: tuple[Path, str, Path], tmp_path: Path) -> None:
    _, comp, script = sequence_render
    assert_one_line_error(cli_here("nuke", comp, "-o", script), "exists", "--overwrite")
    assert_one_line_error(cli_here("nuke", tmp_path / "none.####.exr", "-o", tmp_path / "a.nk"), "does not exist")
    assert_one_line_error(cli_here("nuke", comp, "-o", tmp_path / "a.txt"), "shot.nk")
    bare = tmp_path / "bare.####.exr"
    (tmp_path / ".bare.####.exr.faceplate.json").write_text("{}")
    assert_one_line_error(cli_here("nuke", bare, "-o", tmp_path / "a.nk"), "--deliver layers")
    write_exr(tmp_path / "bare_layers.0001.exr", ["R", "G", "B"], {})
    assert_one_line_error(cli_here("nuke", bare, "-o", tmp_path / "a.nk"), "not a faceplate layers EXR")
    assert not (tmp_path / "a.nk").exists()
    ok = cli_here("nuke", comp, "-o", tmp_path / "b.nk", "--overwrite")
    assert ok.returncode == 0 and (tmp_path / "b.nk").is_file(), ok.stderr


# ---------------------------------------------------------------------------- a real render


def pin_affine(pin: dict[str, str], frame: int) -> np.ndarray:
    """(2, 3) map of the CornerPin on ``frame``: aligned Nuke coords (from) → plate Nuke coords (to)."""
    src = np.array([[float(v) for v in pin[f"from{i}"].strip("{}").split()] for i in range(1, 5)])
    dst = np.array([[c[frame] for c in curves(pin[f"to{i}"])] for i in range(1, 5)])
    sol, *_ = np.linalg.lstsq(np.hstack([src, np.ones((4, 1))]), dst, rcond=None)
    return sol.T


@pytest.mark.slow
def test_real_render_with_layers_to_nuke(tmp_path: Path) -> None:
    """4 frames of d18 rendered with --deliver layers,patches → ``faceplate nuke``: the CornerPin keys are the
    EXR metadata's matrices, and the pin's inverse lands each plate pixel where the layer's STMap says."""
    clip = extracted_clip(tmp_path, "d18.mp4", 4)
    comp = str(tmp_path / "out" / "comp.####.exr")
    run = cli_here("beauty", clip, "-o", comp, "--shot", tmp_path / "shot", "--deliver", "layers,patches")
    assert run.returncode == 0, run.stderr
    run = cli_here("nuke", comp, "-o", tmp_path / "shot.nk")
    assert run.returncode == 0, run.stderr
    root, layers, nodes = parse_nk((tmp_path / "shot.nk").read_text())
    assert (root["first_frame"], root["last_frame"], root["fps"]) == ("0", "3", "30")
    plate = nodes["Read_plate"].knobs
    assert (unquote(plate["file"]), plate["first"], plate["last"], unquote(plate["frame"])) == (
        str(clip), "1", "4", "0")  # fmt: skip
    assert unquote(plate["colorspace"]) == "Gamma 2.4 Encoded Rec.709"  # from the shot: EXR keeps no colour space
    assert nodes["STMap_t0"].knobs["uv"] == "stmap" and ["stmap", "stmap.u", "stmap.v"] in layers
    pin = nodes["CornerPin_t0"].knobs
    for f in range(4):
        spec = oiio.ImageInput.open(str(tmp_path / "out" / f"comp_layers.{f:04d}.exr"))
        face = json.loads(spec.spec().get_string_attribute("faceplate/faces"))[0]
        names = list(spec.spec().channelnames)
        px = spec.read_image(oiio.FLOAT)
        spec.close()
        m, res = np.array(face["aligned_to_plate"]), face["res"]
        keys = np.array([[c[f] for c in curves(pin[f"to{i}"])] for i in range(1, 5)])
        h = px.shape[0]
        assert np.abs(keys - expected_corners(m, res, h)).max() < 1e-4
        assert np.abs(transform_corners(nodes["Transform_t0"].knobs, f, res) - keys).max() < 5e-4
        uv = px[..., [names.index("stmap.u"), names.index("stmap.v")]]
        r, c = np.nonzero((uv > 0.05).all(axis=2) & (uv < 0.95).all(axis=2))
        a = pin_affine(pin, f)
        nk_plate = np.stack([c + 0.5, h - r - 0.5], axis=1)
        back = np.linalg.solve(a[:, :2], (nk_plate - a[:, 2]).T).T / res  # aligned Nuke coords → u, v
        assert len(r) > 1000 and np.abs(back - uv[r, c]).max() < 1e-5  # measured ~2e-7


def test_layers_and_plate_overrides(sequence_render: tuple[Path, str, Path], tmp_path: Path) -> None:
    """``--layers`` reads a sequence that is not the comp's sibling; ``--plate`` points the plate Read elsewhere."""
    root, _, _ = sequence_render
    moved = tmp_path / "moved.####.exr"
    for f in FRAMES:
        write_exr(tmp_path / f"moved.{f:04d}.exr", ["R", "G", "B"], {})
    comp = tmp_path / "renamed.mov"
    comp.write_bytes(b"\0")
    layers = str(root / "render" / "comp_layers.####.exr")
    out = write_nuke_script(NukeConfig(render=str(comp), out=tmp_path / "o.nk", layers=layers, plate=str(moved)))
    _, _, nodes = parse_nk(out.read_text())
    assert unquote(nodes["Read_layers"].knobs["file"]) == layers
    assert unquote(nodes["Read_plate"].knobs["file"]) == str(moved)
    assert not any(n.startswith("Read_patches") for n in nodes)  # renamed_patches/ does not exist
