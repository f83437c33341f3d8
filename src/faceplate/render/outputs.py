"""A render's outputs: which files, refusing what would overwrite the plate or another output, and the
record that lets a rerun reuse only what the same settings made.

Every output (comp, matte, delta) gets a hidden record beside it (``.NAME.faceplate.json``): the plate,
the effect, its settings and model fingerprint, the faces chosen and the writer. A rerun whose record
differs, or an output that exists without a record, is refused unless ``overwrite`` is set; then the old
frames are removed first.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from faceplate.config import RenderConfig
from faceplate.deliver import DeliverInfo, LayersWriter, PatchWriter
from faceplate.effects.base import Effect
from faceplate.errors import ConfigError, WriterError
from faceplate.extract import missing_runs
from faceplate.fileio import atomic_write_text
from faceplate.media.frames import FrameRange, is_pattern, pattern_regex, sequence_files
from faceplate.media.plate import Plate, SequencePlate, VideoPlate
from faceplate.media.writers import WRITERS, FrameWriter, WriterSpec, open_writer, writer_name

RECORD_SUFFIX = ".faceplate.json"


def sibling(out: str, suffix: str, fmt: str | None = None) -> str:
    """``comp.####.exr`` → ``comp_matte.####.exr``; ``comp.mov`` → ``comp_matte.mov``."""
    p = Path(out)
    name = p.name
    m = re.search(r"[.](#+|@+|%0?\d*d)[.]", name)
    if m:
        return str(p.with_name(f"{name[: m.start()]}_{suffix}{name[m.start() :]}"))
    if fmt == "exr":
        return str(p.with_name(f"{p.stem}_{suffix}.####.exr"))
    return str(p.with_name(f"{p.stem}_{suffix}{p.suffix}"))


def default_matte(out: str, writer: str) -> str | None:
    """Matte path when none is asked for: in the comp's alpha if it has one (EXR, ProRes 4444), a sibling
    sequence for PNG/TIFF comps, and none for review video (H.264, HEVC, DNxHR: pass ``--matte``)."""
    cls = WRITERS.get(writer)
    if cls.has_alpha or not cls.farmable:
        return None
    return sibling(out, "matte")


def deliverable_path(out: str, name: str) -> str:
    """Where deliverable ``name`` of the comp ``out`` goes: ``layers`` → ``comp_layers.####.exr`` (for
    ``comp.####.exr``, ``comp.####.png`` and ``comp.mp4`` alike), ``patches`` → the folder ``comp_patches``
    beside the comp."""
    if name == "layers":
        return str(Path(sibling(out, "layers", "exr")).with_suffix(".exr"))
    p = Path(sibling(out, "patches", "exr"))
    return str(p.with_name(p.name[: p.name.rfind("_patches") + len("_patches")]))


def output_paths(cfg: RenderConfig) -> dict[str, str]:
    """{role: path} of the render's outputs: ``comp`` always, ``matte`` and ``delta`` when written, then the
    deliverables (``layers``, ``patches``) asked for."""
    name = writer_name(cfg.out, cfg.format)
    out = {"comp": cfg.out}
    matte = cfg.matte if cfg.matte is not None else default_matte(cfg.out, name)
    if matte and matte != "none":
        out["matte"] = matte
    if cfg.delta:
        if writer_name(cfg.delta) not in ("exr", "exr32"):
            raise ConfigError(f"--delta {cfg.delta}: the delta (comp - plate) has negative values; write it as EXR")
        out["delta"] = cfg.delta
    for name in cfg.deliver:
        out[name] = deliverable_path(cfg.out, name)
    return out


def _files_of(path: str, rng: FrameRange) -> set[Path]:
    """The files an output path (a file or a sequence pattern) names for frames ``rng``."""
    if not is_pattern(Path(path).name):
        return {Path(path).resolve()}
    named = {Path(f).resolve() for f in sequence_files(path).values()}
    return named | {Path(path).resolve()}  # the pattern itself stands for its frames not yet on disk


def _same_pattern(a: str, b: str) -> bool:
    """Do two paths name the same files (equal after resolving; sequence patterns by folder and regex)?"""
    pa, pb = Path(a), Path(b)
    if is_pattern(pa.name) and is_pattern(pb.name):
        (fa, ra), (fb, rb) = pattern_regex(a), pattern_regex(b)
        return fa.resolve() == fb.resolve() and ra.pattern == rb.pattern
    return pa.resolve() == pb.resolve()


def check_outputs(cfg: RenderConfig, plate: Plate, rng: FrameRange) -> None:
    """Refuse outputs that are the plate, a file of the plate's sequence, or another output of this render."""
    outs = output_paths(cfg)
    plate_files = _plate_files(plate)
    for role, path in outs.items():
        flag = {"comp": "-o", "matte": "--matte", "delta": "--delta"}.get(role, f"--deliver {role}:")
        same_seq = (
            isinstance(plate, SequencePlate) and plate.info.kind == "sequence" and _same_pattern(path, plate.info.path)
        )
        if same_seq or plate_files & _files_of(path, rng):
            raise ConfigError(f"{flag} {path} would overwrite the plate {plate.info.path}; write the render elsewhere")
    roles = list(outs.items())
    for i, (ra, a) in enumerate(roles):
        for rb, b in roles[i + 1 :]:
            if _same_pattern(a, b):
                raise ConfigError(f"the {rb} output {b} is the {ra} output too; give it another name")


def _plate_files(plate: Plate) -> set[Path]:
    if isinstance(plate, VideoPlate):
        return {Path(plate.info.path).resolve()}
    if isinstance(plate, SequencePlate):
        return {Path(plate.path_of(f)).resolve() for f in range(plate.info.first_frame, plate.info.last_frame + 1)}
    return set()


def render_record(
    cfg: RenderConfig, effect: Effect, role: str, overrides: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """What makes one output's frames: plate, effect record, faces chosen, writer and options, and the shot's
    per-range overrides of the effect when it has any (a render without keeps the record it had before)."""
    ext = cfg.extract
    return {
        "role": role,
        "plate": str(Path(ext.plate).resolve()),
        "colorspace": ext.colorspace,
        **effect.record(),
        "track": cfg.track,
        "face": None if cfg.face is None else str(Path(cfg.face).resolve()),
        "hands": ext.hands,
        **({} if cfg.glasses == "auto" else {"glasses": cfg.glasses}),  # records made before --glasses stay equal
        "format": cfg.format,
        "codec_options": cfg.codec_options if role == "comp" else {},
        **({"overrides": overrides} if overrides else {}),
    }


def record_path(path: str) -> Path:
    """Hidden record file beside an output (``comp.####.exr`` → ``.comp.####.exr.faceplate.json``)."""
    p = Path(path)
    return p.with_name(f".{p.name}{RECORD_SUFFIX}")


def _existing(path: str, rng: FrameRange) -> list[Path]:
    """Files of this output already on disk (sequence frames of any number, or the video and its parts)."""
    p = Path(path)
    if is_pattern(p.name):
        return sorted(f for f in _files_of(path, rng) if f.is_file())
    parts = p.with_name(f".{p.name}.parts")
    return [f for f in (p, parts) if f.exists()]


def _flat(d: dict[str, Any], head: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys: {"settings": {"strength": 0.7}} → {"settings.strength": 0.7}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{head}{k}"
        out.update(_flat(v, f"{key}.") if isinstance(v, dict) and v else {key: v})
    return out


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two records, e.g. ``settings.strength 0.7 → 0.3``."""
    o, n = _flat(old), _flat(new)
    diff = [
        f"{k.removeprefix('settings.')} {o.get(k)} → {n.get(k)}"
        for k in sorted(set(o) | set(n))
        if o.get(k) != n.get(k)
    ]
    return ", ".join(diff[:4]) + (", …" if len(diff) > 4 else "")


def _why(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    if old is None:
        return "exists and was not made by this render"
    if old.get("effect") != new.get("effect"):
        return f"was rendered by another effect ({old.get('effect')}, not {new.get('effect')})"
    if old.get("plate") != new.get("plate"):
        return f"was rendered from another plate ({old.get('plate')})"
    return f"was rendered with other settings ({_differences(old, new)})"


def claim_outputs(
    cfg: RenderConfig, effect: Effect, rng: FrameRange, overrides: list[dict[str, Any]] | None = None
) -> None:
    """Check each existing output was made by this same render (else refuse, or clear it with
    ``cfg.overwrite``), then write the records. Call before any frame is written."""
    for role, path in output_paths(cfg).items():
        record = render_record(cfg, effect, role, overrides)
        rec = record_path(path)
        old = _read_record(rec)
        existing = _existing(path, rng)
        if existing and old != record:
            if not cfg.overwrite:
                raise ConfigError(
                    f"{path} {_why(old, record)}; pass --overwrite to replace it, or choose another output"
                )
            _remove(existing)
        _write_record(rec, record)


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_record(path: Path, record: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriterError(f"cannot create output folder {path.parent}: {err.strerror}") from None
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True))


def release_outputs(cfg: RenderConfig) -> None:
    """Drop the records of outputs that were not written after all (a render with nothing to show)."""
    for path in output_paths(cfg).values():
        if not _existing(path, FrameRange(0, 0)):
            record_path(path).unlink(missing_ok=True)


def _remove(files: list[Path]) -> None:
    for f in files:
        with contextlib.suppress(OSError):
            shutil.rmtree(f) if f.is_dir() else f.unlink()


def open_outputs(cfg: RenderConfig, plate: Plate, rng: FrameRange) -> dict[str, FrameWriter]:
    """Writers for the comp (+ matte, + delta) of frames ``rng`` of ``plate``."""
    info = plate.info
    audio = plate.audio_at(rng.first) if isinstance(plate, VideoPlate) else None
    name = writer_name(cfg.out, cfg.format)
    base = WriterSpec(cfg.out, info.width, info.height, info.fps, colorspace=info.colorspace, first_frame=rng.first,
                      frame_count=len(rng))  # fmt: skip
    outs = output_paths(cfg)
    alpha = WRITERS.get(name).has_alpha or info.has_alpha  # the matte (EXR, ProRes 4444), else the plate's own
    comp = replace(base, format=name, alpha=alpha, audio=audio, options=cfg.codec_options)
    writers = {"comp": open_writer(comp)}
    if "matte" in outs:
        matte = outs["matte"]
        fast = {"preset": "ultrafast"} if writer_name(matte) in ("h264", "hevc") else {}  # mattes are easy to code
        fmt = name if writer_name(matte) == name else None
        writers["matte"] = open_writer(replace(base, path=matte, format=fmt, options=fast))
    if "delta" in outs:
        writers["delta"] = open_writer(replace(base, path=outs["delta"]))
    return writers


def open_deliverables(
    cfg: RenderConfig, plate: Plate, rng: FrameRange, effect: Effect, tracks: list[int]
) -> dict[str, FrameWriter]:
    """Writers of the deliverables asked for (``cfg.deliver``) of frames ``rng``, for the render's ``tracks``."""
    info = plate.info
    paths = output_paths(cfg)
    meta = DeliverInfo(str(Path(info.path).resolve()), str(Path(cfg.shot).resolve()), info.colorspace, info.fps,
                       effect.name, effect.record(), list(tracks))  # fmt: skip
    base = WriterSpec(cfg.out, info.width, info.height, info.fps, colorspace=info.colorspace, first_frame=rng.first,
                      frame_count=len(rng))  # fmt: skip
    kinds = {"layers": LayersWriter, "patches": PatchWriter}
    return {d: kinds[d](replace(base, path=paths[d]), meta) for d in cfg.deliver}


def comp_alpha(writer: FrameWriter, plate: Plate, frame: int, matte: NDArray[Any] | None) -> NDArray[Any] | None:
    """Alpha of the comp: the matte where the format carries it (EXR, ProRes 4444), else the plate's own
    alpha (PNG/TIFF comps keep it; the matte goes to its sidecar), else none."""
    if type(writer).has_alpha:
        return matte
    return plate.read_alpha(frame) if plate.info.has_alpha else None


def frames_done(writers: dict[str, FrameWriter], rng: FrameRange) -> set[int]:
    """Frames of ``rng`` already written by every writer (none when a writer cannot resume)."""
    if not all(w.resumable for w in writers.values()):
        return set()
    return {f for f in range(rng.first, rng.last + 1) if all(w.exists(f) for w in writers.values())}


def frames_to_do(writers: dict[str, FrameWriter], rng: FrameRange) -> list[FrameRange]:
    """Runs of frames in ``rng`` not yet written by every writer (all of it for non-resumable writers)."""
    return missing_runs(rng, frames_done(writers, rng))


def stays_yuv(writers: dict[str, FrameWriter], col_identity: bool) -> bool:
    """Can frames go from decoder to encoder as 8-bit Y'CbCr (display-like plate, video comp, no delta)?"""
    return col_identity and "delta" not in writers and writers["comp"].takes_yuv
