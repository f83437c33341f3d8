"""``faceplate nuke``: a Nuke script that rebuilds a faceplate render from its deliverables.

It reads only the layered EXRs' headers (``--deliver layers``: never their pixels) and the render's record,
and writes the script as text (Nuke need not be installed). The graph: ``Read`` the plate and the layers,
``Shuffle`` out face / matte / delta / occlusion, ``Merge2`` the premultiplied face over the plate; per track
a ``Read`` of the patches (``--deliver patches``, when present), ``STMap`` through the track's stmap layer and
``Merge2`` over the plate, and a ``CornerPin2D`` keyed on every frame from the aligned crop's corners (plus
the same placement as a keyed ``Transform``: translate, rotate, scale about the crop's centre).

Colour: both Reads are ``raw``, so the over happens on the code values faceplate composited (where
``face over plate == comp`` holds exactly, for non-linear plates too); one ``OCIOColorSpace`` then takes the
plate's colour space to ``scene_linear``. Geometry: OpenCV pixel (column c, row r from the top, centre at
integer c, r) is Nuke position (c + 0.5, H - r - 0.5) (origin bottom-left, pixel edges at integers), so the
aligned crop's outer pixel edges, OpenCV (-0.5, -0.5) .. (R - 0.5, R - 0.5), are Nuke's (0, 0) .. (R, R).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, field_validator

from faceplate import __version__
from faceplate.errors import ConfigError, FaceplateError, WriterError
from faceplate.fileio import atomic_write_text
from faceplate.media import colour
from faceplate.media.frames import is_pattern, sequence_files
from faceplate.media.plate import VIDEO_EXTS, PlateInfo, open_plate
from faceplate.render.outputs import deliverable_path, record_path, sibling
from faceplate.store import ShotStore

NUKE_VERSION = "14.0 v1"  # the script's ``version`` line (knob names as Nuke saves them; not opened in Nuke here)
GRID_X, GRID_Y = 180, 120  # node spacing in the DAG
_NUKE_CHANNEL = {"R": "red", "G": "green", "B": "blue", "A": "alpha"}
_BARE = re.compile(r"^[A-Za-z0-9_./#%:+\-]+$")


class NukeConfig(BaseModel):
    """``faceplate nuke``: which render, where the script goes, and the deliverables when not at their defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    render: str  # the comp as rendered: sequence pattern (comp.####.exr) or video
    out: Path  # the .nk to write
    layers: str | None = None  # layered EXR sequence; default sibling(render, "layers", "exr")
    patches: Path | None = None  # patches folder; default <comp stem>_patches beside the comp, used if present
    plate: str | None = None  # the plate, when it moved since the render (default: the path in the layers)
    overwrite: bool = False  # replace an existing .nk

    @field_validator("out")
    @classmethod
    def _nk(cls, v: Path) -> Path:
        if v.suffix.lower() != ".nk":
            raise ValueError(f"{v} is not a Nuke script name: write shot.nk")
        return v


@dataclass(frozen=True)
class FacePlacement:
    """One face on one frame: its track, aligned crop size and the (2, 3) aligned→plate matrix (OpenCV px)."""

    track: int
    res: int
    aligned_to_plate: NDArray[np.float64]


@dataclass(frozen=True)
class LayersFrame:
    """What one layers EXR's header says: frame number, faces changed, stmap layer → track."""

    frame: int
    faces: tuple[FacePlacement, ...]
    stmap: dict[str, int]


@dataclass(frozen=True)
class Layers:
    """A layers sequence as its headers describe it (frames sorted)."""

    pattern: str
    width: int
    height: int
    fps: Fraction
    colorspace: str
    plate: str
    shot: str
    effect: str
    tracks: tuple[int, ...]
    layers: tuple[tuple[str, tuple[str, ...]], ...]  # (layer, Nuke channel names) besides rgba, in file order
    frames: tuple[LayersFrame, ...]

    @property
    def first(self) -> int:
        return self.frames[0].frame

    @property
    def last(self) -> int:
        return self.frames[-1].frame


# ------------------------------------------------------------------------------------------- geometry


def crop_corners(res: int) -> NDArray[np.float64]:
    """(4, 2) outer pixel edges of an R×R aligned crop in OpenCV px, in Nuke's CornerPin order (bottom-left,
    bottom-right, top-right, top-left as seen with y up)."""
    lo, hi = -0.5, res - 0.5
    return np.array([[lo, hi], [hi, hi], [hi, lo], [lo, lo]], np.float64)


def to_nuke(points: NDArray[np.float64], height: int) -> NDArray[np.float64]:
    """(N, 2) OpenCV px (top-left origin, centres at integers) → Nuke px (bottom-left origin, edges at integers)."""
    return np.stack([points[:, 0] + 0.5, height - (points[:, 1] + 0.5)], axis=1)


def plate_corners(aligned_to_plate: NDArray[np.float64], res: int, height: int) -> NDArray[np.float64]:
    """(4, 2) Nuke plate positions of the aligned crop's corners (CornerPin2D ``to1..to4``) under the (2, 3)
    aligned→plate matrix, for a plate ``height`` px high."""
    c = crop_corners(res)
    cv = c @ aligned_to_plate[:, :2].T + aligned_to_plate[:, 2]
    return to_nuke(cv, height)


def nuke_affine(aligned_to_plate: NDArray[np.float64], res: int, height: int) -> NDArray[np.float64]:
    """(2, 3) map from the crop's Nuke coords (R×R, y up, edges at integers) to the plate's, for the (2, 3)
    OpenCV aligned→plate matrix: Nuke (X, Y) → crop px (X - 0.5, R - Y - 0.5) → plate px → Nuke."""
    to_cv = np.array([[1.0, 0, -0.5], [0, -1.0, res - 0.5], [0, 0, 1.0]])
    to_nk = np.array([[1.0, 0, 0.5], [0, -1.0, height - 0.5], [0, 0, 1.0]])
    return (to_nk @ np.vstack([aligned_to_plate, [0, 0, 1.0]]) @ to_cv)[:2]


def similarity_knobs(aligned_to_plate: NDArray[np.float64], res: int, height: int) -> NDArray[np.float64] | None:
    """Nuke Transform values (translate x, y, rotate degrees counter-clockwise, uniform scale) with its centre
    at the crop's (R/2, R/2), placing the crop as the matrix does; None when the matrix is not a similarity."""
    m = nuke_affine(aligned_to_plate, res, height)
    a = m[:, :2]
    if abs(a[0, 0] - a[1, 1]) > 1e-6 * abs(a).max() or abs(a[0, 1] + a[1, 0]) > 1e-6 * abs(a).max():
        return None
    centre = np.array([res / 2, res / 2])
    move = a @ centre + m[:, 2] - centre
    return np.array([move[0], move[1], np.degrees(np.arctan2(a[1, 0], a[0, 0])), np.hypot(a[0, 0], a[1, 0])])


# ------------------------------------------------------------------------------------------- reading


def _json_attr(spec: oiio.ImageSpec, name: str, path: Path) -> Any:
    text = spec.get_string_attribute(name, "")
    if not text:
        raise ConfigError(f"{path} has no {name} metadata: not a faceplate layers EXR (render with --deliver layers)")
    try:
        return json.loads(text)
    except ValueError:
        raise ConfigError(f"{path}: its {name} metadata is not JSON") from None


def _faces(data: Any, path: Path) -> tuple[FacePlacement, ...]:
    try:
        out = [FacePlacement(int(f["track"]), int(f["res"]), np.asarray(f["aligned_to_plate"], np.float64))
               for f in data]  # fmt: skip
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{path}: faceplate/faces is not a list of {{track, res, aligned_to_plate}}") from None
    if any(f.aligned_to_plate.shape != (2, 3) or not np.isfinite(f.aligned_to_plate).all() for f in out):
        raise ConfigError(f"{path}: an aligned_to_plate matrix in faceplate/faces is not a finite 2x3 matrix")
    return tuple(sorted(out, key=lambda f: f.track))


def _fps(spec: oiio.ImageSpec) -> Fraction:
    v = spec.getattribute("FramesPerSecond")
    if isinstance(v, tuple | list) and len(v) == 2 and v[1]:
        return Fraction(int(v[0]), int(v[1]))
    return Fraction(24)


def _nuke_layers(channels: Iterable[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """EXR channel names → (layer, Nuke channel names) besides rgba: ``face.R`` → ``face.red``, ``stmap.u`` stays."""
    layers: dict[str, list[str]] = {}
    for ch in channels:
        layer, dot, name = ch.rpartition(".")
        if dot:
            layers.setdefault(layer, []).append(f"{layer}.{_NUKE_CHANNEL.get(name, name)}")
    return tuple((k, tuple(v)) for k, v in layers.items())


def _colorspace(name: str) -> str:
    """The OCIO config's own name of a colour space (OIIO may store an alias such as ``lin_rec709``)."""
    try:
        return colour.resolve(name) if name else name
    except ConfigError:
        return name


def _read_header(path: Path) -> oiio.ImageSpec:
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise ConfigError(f"cannot read {path}: {oiio.geterror() or 'not an image'}")
    try:
        return inp.spec()
    finally:
        inp.close()


def read_layers(pattern: str) -> Layers:
    """Every frame's header of the layers sequence ``pattern`` (``comp_layers.####.exr``); ConfigError when
    there is none or a header is not faceplate's."""
    files = sequence_files(pattern)
    if not files:
        raise ConfigError(f"no layers EXR at {pattern}: render with --deliver layers first (or give --layers)")
    frames: list[LayersFrame] = []
    layers: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    tracks: set[int] = set()
    first: oiio.ImageSpec | None = None
    for frame, name in sorted(files.items()):
        path = Path(name)
        spec = _read_header(path)
        first = first or spec
        frames.append(LayersFrame(frame, _faces(_json_attr(spec, "faceplate/faces", path), path),
                                  dict(_json_attr(spec, "faceplate/stmap", path).get("layers", {}))))  # fmt: skip
        tracks.update(int(t) for t in _json_attr(spec, "faceplate/tracks", path))
        layers = layers or _nuke_layers(spec.channelnames)
    assert first is not None and layers is not None
    return Layers(
        pattern=str(Path(pattern).absolute()),
        width=first.width,
        height=first.height,
        fps=_fps(first),
        colorspace=_colorspace(first.get_string_attribute("oiio:ColorSpace", "")),
        plate=first.get_string_attribute("faceplate/plate", ""),
        shot=first.get_string_attribute("faceplate/shot", ""),
        effect=first.get_string_attribute("faceplate/effect", ""),
        tracks=tuple(sorted(tracks)),
        layers=layers,
        frames=tuple(frames),
    )


def plate_info(plate: str, shot: str, layers: Layers, colorspace: str) -> PlateInfo:
    """The plate's frames, kind and colour space: from the shot store (it knows a video's first frame number),
    else from the plate itself, else (both gone) what the layers imply, in ``colorspace``."""
    try:
        if shot:
            with ShotStore.open(shot) as store:
                return store.plate
    except (FaceplateError, OSError, ValueError):
        pass
    try:
        with open_plate(plate) as p:
            return p.info
    except (FaceplateError, OSError):
        pass
    video = Path(plate).suffix.lower() in VIDEO_EXTS
    first = 0 if video else layers.first
    return PlateInfo(plate, "video" if video else "sequence", layers.width, layers.height, layers.fps, first,
                     layers.last - first + 1, colorspace, 16, "", False, False)  # fmt: skip


# ------------------------------------------------------------------------------------------- script text


def num(v: float, places: int = 4) -> str:
    """A knob number, deterministic and short: ``places`` decimals at most (1e-4 px), no trailing zeros."""
    s = f"{v:.{places}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def quote(s: str) -> str:
    """A TCL word for a knob value: bare when safe, else double-quoted with \\ " $ [ ] escaped."""
    if _BARE.match(s):
        return s
    return '"' + re.sub(r'([\\"$\[\]])', r"\\\1", s) + '"'


def curve(keys: list[tuple[int, float]], places: int = 4) -> str:
    """Nuke animation ``{curve x1001 12.5 x1002 13}`` of (frame, value) keys."""
    return "{curve " + " ".join(f"x{f} {num(v, places)}" for f, v in keys) + "}"


@dataclass
class Node:
    """One node of the script: class, name, knobs (in order, values already as text), inputs by node name
    (None: unconnected) and DAG position."""

    cls: str
    name: str
    knobs: list[tuple[str, str]]
    inputs: list[str | None] = field(default_factory=list)
    x: int = 0
    y: int = 0


def script_text(root: list[tuple[str, str]], layers: Layers, nodes: list[Node], comment: str) -> str:
    """The .nk text: header, Root, add_layer lines, then the nodes in order; inputs are pushed from saved
    stack variables (input 0 last: it is the top of the stack when the node pops its inputs)."""
    used = {i for n in nodes for i in n.inputs if i is not None}
    var = {n.name: f"N{k + 1:08x}" for k, n in enumerate(nodes) if n.name in used}
    lines = ["#! nuke -nx", f"# {comment}", f"version {NUKE_VERSION}", "Root {", " inputs 0"]
    lines += [f" {k} {v}" for k, v in root] + ["}"]
    lines += [f"add_layer {{{name} {' '.join(chans)}}}" for name, chans in layers.layers]
    for n in nodes:
        lines += ["push 0" if i is None else f"push ${var[i]}" for i in reversed(n.inputs)]
        lines.append(f"{n.cls} {{")
        if len(n.inputs) != 1:
            lines.append(f" inputs {len(n.inputs)}")
        lines += [f" {k} {v}" for k, v in n.knobs]
        lines += [f" name {n.name}", f" xpos {n.x}", f" ypos {n.y}", "}"]
        if n.name in var:
            lines.append(f"set {var[n.name]} [stack 0]")
    return "\n".join(lines) + "\n"


def fmt_knob(width: int, height: int, name: str) -> str:
    return quote(f"{width} {height} 0 0 {width} {height} 1 {name}")


def nuke_pattern(path: str) -> str:
    """A sequence pattern Nuke reads: ``@@@@`` → ``####``; ``####`` and ``%04d`` stay."""
    return re.sub(r"@+", lambda m: "#" * len(m.group(0)), path)


def plate_read(info: PlateInfo, path: str, colorspace: str) -> list[tuple[str, str]]:
    """Knobs of the plate's Read: file, format, frames (a video starts at its plate frame number), colour."""
    knobs = [("file", quote(nuke_pattern(path) if is_pattern(Path(path).name) else path)),
             ("format", fmt_knob(info.width, info.height, "faceplate_plate"))]  # fmt: skip
    if info.kind == "video":
        n = info.frame_count
        knobs += [("first", "1"), ("last", str(n)), ("origfirst", "1"), ("origlast", str(n)), ("origset", "true"),
                  ("frame_mode", quote("start at")), ("frame", quote(str(info.first_frame)))]  # fmt: skip
    else:
        a, b = str(info.first_frame), str(info.last_frame)
        knobs += [("first", a), ("last", b), ("origfirst", a), ("origlast", b), ("origset", "true")]
    return knobs + [("colorspace", quote(colorspace)), ("raw", "true")]


def seq_read(pattern: str, first: int, last: int, width: int, height: int, fmt: str) -> list[tuple[str, str]]:
    a, b = str(first), str(last)
    return [("file", quote(pattern)), ("format", fmt_knob(width, height, fmt)), ("first", a), ("last", b),
            ("origfirst", a), ("origlast", b), ("origset", "true"), ("on_error", "black")]  # fmt: skip


def track_keys(layers: Layers, track: int) -> tuple[int, list[tuple[int, NDArray[np.float64]]]]:
    """The track's crop size and [(frame, (4, 2) Nuke plate corners)] on every frame it was changed."""
    faces = [(fr.frame, f) for fr in layers.frames for f in fr.faces if f.track == track]
    res = faces[0][1].res if faces else 0
    return res, [(frame, plate_corners(f.aligned_to_plate, f.res, layers.height)) for frame, f in faces]


def corner_pin(layers: Layers, track: int, source: str | None, x: int, y: int) -> Node | None:
    """CornerPin2D of track ``track``: ``from1..4`` the R×R crop, ``to1..4`` keyed per frame on the plate."""
    res, keys = track_keys(layers, track)
    if not keys:
        return None
    knobs = []
    for i in range(4):
        xs = curve([(f, c[i, 0]) for f, c in keys])
        ys = curve([(f, c[i, 1]) for f, c in keys])
        knobs.append((f"to{i + 1}", f"{{{xs} {ys}}}"))
    for i, (fx, fy) in enumerate([(0, 0), (res, 0), (res, res), (0, res)]):
        knobs.append((f"from{i + 1}", f"{{{fx} {fy}}}"))
    label = f"track {track}: aligned {res}px crop to plate" + ("" if source else "\nplug an aligned element in")
    knobs.append(("label", quote(label)))
    return Node("CornerPin2D", f"CornerPin_t{track}", knobs, [source], x, y)


def transform(layers: Layers, track: int, source: str | None, x: int, y: int) -> Node | None:
    """Transform of track ``track`` keyed per frame (translate, rotate, scale about the crop's centre): the
    CornerPin's placement as a similarity, when every frame's matrix is one (at one crop size)."""
    faces = [(fr.frame, f) for fr in layers.frames for f in fr.faces if f.track == track]
    if not faces or len({f.res for _, f in faces}) != 1:
        return None
    res = faces[0][1].res
    vals = [similarity_knobs(f.aligned_to_plate, res, layers.height) for _, f in faces]
    if any(v is None for v in vals):
        return None
    table = np.array(vals, np.float64)  # (frames, 4): tx, ty, rotate, scale
    table[:, 2] = np.degrees(np.unwrap(np.radians(table[:, 2])))  # no 360° jumps between keys
    frames = [frame for frame, _ in faces]
    places = (4, 4, 6, 7)  # rotate and scale act over the whole crop: 1e-6 of either is < 1e-4 px at R = 1024
    col = [curve([(f, float(v)) for f, v in zip(frames, table[:, i], strict=True)], places[i]) for i in range(4)]
    knobs = [("translate", f"{{{col[0]} {col[1]}}}"), ("rotate", col[2]), ("scale", f"{{{col[3]} {col[3]}}}"),
             ("center", f"{{{num(res / 2)} {num(res / 2)}}}"),
             ("label", quote(f"track {track}: the CornerPin as translate/rotate/scale"))]  # fmt: skip
    return Node("Transform", f"Transform_t{track}", knobs, [source], x, y)


def shuffles(layers: Layers, x0: int, y: int) -> list[Node]:
    """Shuffle nodes taking face (to rgba), matte, delta and occlusion (alpha into rgb and a) out of the layers."""
    present = {name for name, _ in layers.layers}
    if "face" not in present:
        raise ConfigError(f"{layers.pattern} has no face.* channels: not a faceplate layers EXR")
    grey = [("red", "alpha"), ("green", "alpha"), ("blue", "alpha"), ("alpha", "alpha")]
    spec = [("face", []), ("matte", grey), ("delta", [("alpha", "black")]), ("occlusion", grey)]
    out = []
    for k, (layer, knobs) in enumerate(s for s in spec if s[0] in present):
        out.append(Node("Shuffle", f"Shuffle_{layer}", [("in", layer), *knobs], ["Read_layers"], x0 + k * GRID_X, y))
    return out


def uv_layers(layers: Layers) -> dict[int, str]:
    """track → its stmap layer name, from the headers (``stmap`` for one track, ``stmap_t{track}`` for more)."""
    out: dict[int, str] = {}
    for fr in layers.frames:
        for name, track in fr.stmap.items():
            out.setdefault(int(track), name)
    return out


def build_nodes(layers: Layers, info: PlateInfo, plate: str, patches: Path | None) -> list[Node]:
    """The script's nodes, in writing order (every input before the node using it)."""
    cs = info.colorspace or layers.colorspace
    label = quote(f"raw: the plate's code values ({cs}), as faceplate composited")
    nodes = [Node("Read", "Read_plate", [*plate_read(info, plate, cs), ("label", label)], [], 0, 0),
             Node("Read", "Read_layers", [*seq_read(nuke_pattern(layers.pattern), layers.first, layers.last,
                                                    layers.width, layers.height, "faceplate_plate"),
                                          ("colorspace", quote(cs)), ("raw", "true")], [], 2 * GRID_X, 0)]  # fmt: skip
    shuf = shuffles(layers, 2 * GRID_X, GRID_Y)
    nodes += shuf
    over = [("operation", "over"), ("label", quote("face over plate == comp"))]
    nodes.append(Node("Merge2", "Merge_face_over_plate", over, ["Read_plate", "Shuffle_face"], 0, 2 * GRID_Y))
    nodes.append(Node("OCIOColorSpace", "OCIO_plate_to_working", [("in_colorspace", quote(cs)),
                      ("out_colorspace", "scene_linear")], ["Merge_face_over_plate"], 0, 3 * GRID_Y))  # fmt: skip
    uv = uv_layers(layers)
    b = "Read_plate"
    x0 = (2 + max(len(shuf), 1)) * GRID_X + GRID_X
    for k, track in enumerate(layers.tracks):
        x = x0 + k * 2 * GRID_X
        folder = None if patches is None else patches / f"t{track}"
        source: str | None = None
        if folder is not None and folder.is_dir():
            res, keys = track_keys(layers, track)
            frames = [f for f, _ in keys] or [layers.first]
            pat = str((folder / "######.png").absolute())
            nodes.append(Node("Read", f"Read_patches_t{track}", [*seq_read(pat, min(frames), max(frames), res, res,
                              f"faceplate_patch_{res}"), ("raw", "true")], [], x, 0))  # fmt: skip
            nodes.append(Node("Premult", f"Premult_patches_t{track}", [], [f"Read_patches_t{track}"], x, GRID_Y))
            source = f"Premult_patches_t{track}"
            if track in uv:
                nodes.append(Node("STMap", f"STMap_t{track}", [("channels", "rgba"), ("uv", uv[track])],
                                  [source, "Read_layers"], x, 2 * GRID_Y))  # fmt: skip
                lab = quote(f"track {track}: patch (STMap) over plate")
                nodes.append(Node("Merge2", f"Merge_patch_t{track}", [("operation", "over"), ("label", lab)],
                                  [b, f"STMap_t{track}"], x, 3 * GRID_Y))  # fmt: skip
                b = f"Merge_patch_t{track}"
        pin = corner_pin(layers, track, source, x + GRID_X, 2 * GRID_Y)
        move = transform(layers, track, source, x + GRID_X, 3 * GRID_Y)
        nodes += [n for n in (pin, move) if n is not None]
    return nodes


def root_knobs(out: Path, layers: Layers) -> list[tuple[str, str]]:
    fps = float(layers.fps)
    return [("name", quote(str(out.absolute()))), ("first_frame", str(layers.first)),
            ("last_frame", str(layers.last)), ("lock_range", "true"),
            ("format", fmt_knob(layers.width, layers.height, "faceplate_plate")), ("proxy_type", "scale"),
            ("fps", f"{fps:.10g}")]  # fmt: skip


def _check_render(render: str) -> None:
    p = Path(render)
    comp = bool(sequence_files(render)) if is_pattern(p.name) else p.exists()
    if not comp and not record_path(render).is_file():
        raise ConfigError(f"render {render} does not exist (no comp and no faceplate record beside it)")


def _record(render: str) -> dict[str, Any]:
    try:
        data = json.loads(record_path(render).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_nuke_script(cfg: NukeConfig) -> Path:
    """Write the Nuke script of ``cfg.render`` (atomically) and return its path."""
    if cfg.out.exists() and not cfg.overwrite:
        raise ConfigError(f"{cfg.out} exists; pass --overwrite to replace it")
    _check_render(cfg.render)
    layers = read_layers(cfg.layers or sibling(cfg.render, "layers", "exr"))
    record = _record(cfg.render)
    plate = cfg.plate or layers.plate or str(record.get("plate", ""))
    if not plate:
        raise ConfigError(f"{layers.pattern} names no plate (faceplate/plate); give it with --plate")
    plate = plate if cfg.plate is None else str(Path(plate).absolute())
    cs = _colorspace(str(record.get("colorspace") or "")) or layers.colorspace  # EXR keeps no colour space
    info = plate_info(plate, layers.shot, layers, cs)
    patches = cfg.patches or Path(deliverable_path(cfg.render, "patches"))
    nodes = build_nodes(layers, info, plate, patches if patches.is_dir() else None)
    effect = layers.effect or str(record.get("effect", "?"))
    comment = f"faceplate {__version__} nuke: {effect} render {Path(cfg.render).absolute()}"
    text = script_text(root_knobs(cfg.out, layers), layers, nodes, comment)
    try:
        cfg.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriterError(f"cannot create folder {cfg.out.parent}: {err.strerror}") from None
    atomic_write_text(cfg.out, text)
    return cfg.out
