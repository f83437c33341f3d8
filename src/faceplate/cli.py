"""``faceplate <stage>``: a thin typer CLI. Each command builds a validated config and calls the API."""

from __future__ import annotations

import errno
import functools
import inspect
import json
import os
import sqlite3
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from faceplate import __version__
from faceplate.config import AlignConfig, ExtractConfig, RenderConfig, build
from faceplate.effects import EFFECTS, Effect
from faceplate.errors import ConfigError, FaceplateError

app = typer.Typer(
    name="faceplate",
    help="Face swap, de-aging and beauty fix for VFX plates.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"faceplate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Face swap, de-aging and beauty fix for VFX plates."""


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar with frames done, speed and time left; yields the callback stages call."""
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:>6.1f} fps"),
        TimeRemainingColumn(),
    ]
    start = time.perf_counter()
    bar = Progress(*columns, console=err, transient=False, disable=not err.is_terminal)
    task = bar.add_task(label, total=None, fps=0.0)

    def update(done: int, total: int) -> None:
        if not bar.live.is_started:  # start on the first frame, so input errors print alone
            bar.start()
        rate = done / max(time.perf_counter() - start, 1e-6)
        bar.update(task, completed=done, total=total, fps=rate)

    try:
        yield update
    finally:
        bar.stop()


@app.command()
def extract(
    plate: Annotated[str, typer.Argument(help="Video file, image sequence (plate.####.exr) or folder.")],
    shot: Annotated[Path, typer.Option("--shot", help="Shot folder (created; re-running resumes).")],
    frames: Annotated[str | None, typer.Option(help="Frame range, e.g. 1001-1100.")] = None,
    colorspace: Annotated[
        str | None, typer.Option(help="Plate colour space (linear, srgb, rec709, acescg...).")
    ] = None,
    first_frame: Annotated[int, typer.Option(help="Frame number of a video's first frame.")] = 0,
    detect_every: Annotated[int, typer.Option(help="Run the detector every N frames while tracking.")] = 5,
    tiles: Annotated[int, typer.Option(help="Also detect on an N x N tile grid (small faces in wide shots).")] = 1,
    min_score: Annotated[float, typer.Option(help="Detector confidence needed for a new face.")] = 0.5,
    hands: Annotated[bool, typer.Option(help="Find hands near faces (effects never touch them).")] = True,
) -> None:
    """Detect, landmark and track every face of a plate into the shot store."""
    from faceplate.extract import extract as run

    cfg = build(
        ExtractConfig,
        plate=plate,
        shot=shot,
        frames=frames,
        colorspace=colorspace,
        first_frame=first_frame,
        detect_every=detect_every,
        tiles=tiles,
        min_score=min_score,
        hands=hands,
    )
    with _progress("extract") as progress:
        s = run(cfg, progress)
    skipped = f", {s.skipped} already stored" if s.skipped else ""
    out.print(
        f"{shot}: frames {s.frames} ({s.analysed} analysed{skipped}) → {s.shots} shot(s), {s.tracks} track(s), "
        f"{s.faces} faces; {s.fps:.1f} fps"
    )


@app.command()
def faces(
    shot: Annotated[Path, typer.Argument(help="Shot folder made by `faceplate extract`.")],
    face: Annotated[Path | None, typer.Option(help="Reference photo: show who matches it.")] = None,
    sheet: Annotated[Path | None, typer.Option(help="Contact sheet PNG (default SHOT/contact_sheet.png).")] = None,
) -> None:
    """List the face tracks (frames, identity, jitter) and write a contact sheet with one tile per track."""
    from faceplate.review import contact_sheet, match_reference, reference_face, track_descriptors
    from faceplate.store import ShotStore

    with ShotStore.open(shot) as store:
        tracks = store.tracks()
        dists: dict[int, float] = {}
        chosen: list[int] = []
        if face is not None:
            ref = reference_face(face)
            from faceplate.analysis.identity import distance

            dists = {t: distance(v, ref.descriptor) for t, v in track_descriptors(store).items()}
            chosen = match_reference(store, ref)[0]
        table = Table(title=f"{shot}: {len(tracks)} track(s) in {len(store.shots())} shot(s)")
        for col in ("track", "identity", "shot", "frames", "faces", "jitter % IOD (raw → smoothed)"):
            table.add_column(col)
        if face is not None:
            table.add_column(f"distance to {face.name}")
        for t in tracks:
            row = [
                str(t.id),
                str(t.identity),
                str(t.shot),
                f"{t.first_frame}-{t.last_frame}",
                str(t.n_faces),
                f"{t.jitter_raw or 0:.2f} → {t.jitter_smooth or 0:.2f}",
            ]
            if face is not None:
                d = dists.get(t.id)
                row.append("-" if d is None else f"{d:.2f}{'  ← match' if t.id in chosen else ''}")
            table.add_row(*row)
        out.print(table)
        path = contact_sheet(store, sheet or shot / "contact_sheet.png")
        out.print(f"contact sheet: {path}")


@app.command()
def review(
    shot: Annotated[Path, typer.Argument(help="Shot folder made by `faceplate extract`.")],
    render: Annotated[
        list[str] | None,
        typer.Option("--render", help="Render to compare: video, out.####.exr or a still (repeatable)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (default: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).")] = 0,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the page in a browser.")] = True,
    plate: Annotated[str | None, typer.Option(help="The shot's plate, when it moved since extraction.")] = None,
    display: Annotated[str | None, typer.Option(help="OCIO display of the proxies (default: the config's).")] = None,
    view: Annotated[str, typer.Option(help="OCIO view; auto: video as encoded, scene-linear un-tone-mapped.")] = "auto",
    model: Annotated[
        list[Path] | None,
        typer.Option("--model", help="Model folder the page may use (swap, keyframes, training monitor; repeatable)."),
    ] = None,
    cache_limit: Annotated[float, typer.Option(help="Proxy cache size, GiB (least recently used go; 0: none).")] = 8.0,
    warm: Annotated[bool, typer.Option("--warm/--no-warm", help="Make every plate proxy in the background.")] = True,
) -> None:
    """Serve the shot's review page (frame-accurate viewer, compare, tracks, QC marks); prints its URL."""
    from faceplate.app import ReviewConfig, serve

    cfg = build(ReviewConfig, shot=shot, renders=list(render or []), host=host, port=port, open_browser=open_browser,
                plate=plate, display=display, view=view, models=list(model or []), cache_limit_gb=cache_limit,
                warm_plate=warm)  # fmt: skip
    try:
        serve(cfg, lambda url: print(url, flush=True))
    except KeyboardInterrupt:
        err.print("faceplate: review server stopped")
        raise SystemExit(130) from None  # not typer.Exit: main would add the stages' "interrupted" line


@app.command()
def overrides(
    shot: Annotated[Path, typer.Argument(help="Shot folder made by `faceplate extract`.")],
    effect: Annotated[str, typer.Option(help="Effect whose overrides to list or change.")] = "beauty",
    add: Annotated[str | None, typer.Option(help="Frames of a new override: FIRST-LAST, FIRST- (to the end).")] = None,
    setting: Annotated[
        list[str] | None, typer.Option("--set", help="A setting of the new one: settings.strength=0.3 (repeatable).")
    ] = None,
    remove: Annotated[list[int] | None, typer.Option(help="Id of an override to remove (repeatable).")] = None,
    model: Annotated[Path | None, typer.Option(help="Model folder (swap, keyframes), to check settings.")] = None,
) -> None:
    """List the shot's per-range overrides of an effect (renders honour them: the one starting latest wins)."""
    from faceplate.app import shotsettings as ss

    if remove:
        ss.remove_overrides(shot, effect, remove)
        out.print(f"removed {effect} override(s) {', '.join(map(str, remove))}")
    if add is not None:
        oid = ss.add_override(shot, effect, add, ss.parse_settings(setting or []), model)
        out.print(f"added {effect} override {oid} on frames {add}")
    elif setting:
        raise ConfigError("--set goes with --add FRAMES (the frames the new override covers)")
    rows = [(str(o.id), f"{o.first}-{'' if o.last is None else o.last}", json.dumps(o.settings))
            for o in ss.list_overrides(shot, effect)]  # fmt: skip
    _print_table(f"{shot}: {effect} overrides", ("id", "frames", "settings"), rows)


@app.command()
def presets(
    shot: Annotated[Path, typer.Argument(help="Shot folder made by `faceplate extract`.")],
    effect: Annotated[str | None, typer.Option(help="Only this effect's presets.")] = None,
    remove: Annotated[str | None, typer.Option(help="Name of a preset to remove (with --effect).")] = None,
) -> None:
    """List the named presets stored in the shot (saved from the review page's tune panel)."""
    from faceplate.app import shotsettings as ss

    if remove is not None:
        if effect is None:
            raise ConfigError("--remove needs --effect (presets are named per effect)")
        ss.remove_preset(shot, effect, remove)
        out.print(f"removed {effect} preset {remove!r}")
    rows = [(pr.effect, pr.name, json.dumps(pr.settings)) for pr in ss.list_presets(shot, effect)]
    _print_table(f"{shot}: presets", ("effect", "name", "settings"), rows)


def _print_table(title: str, columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    out.print(table)


@app.command()
def align(
    shot: Annotated[Path, typer.Argument(help="Shot folder made by `faceplate extract`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the aligned crops.")],
    track: Annotated[int | None, typer.Option(help="Track number (see `faceplate faces`).")] = None,
    face: Annotated[Path | None, typer.Option(help="Reference photo: align the tracks of this person.")] = None,
    res: Annotated[int, typer.Option(help="Crop size in pixels.")] = 256,
    face_type: Annotated[str, typer.Option("--type", help="face, whole_face or head.")] = "whole_face",
    frames: Annotated[str | None, typer.Option(help="Frame range, e.g. 1001-1100.")] = None,
    every: Annotated[int, typer.Option(help="Keep every Nth face.")] = 1,
    raw: Annotated[bool, typer.Option("--raw", help="Use measured landmarks instead of smoothed ones.")] = False,
) -> None:
    """Write aligned crops (PNG) and their metadata (align.json, landmarks.npy) for one person."""
    from faceplate.export import export_aligned

    cfg = build(
        AlignConfig,
        shot=shot,
        out=output,
        track=track,
        face=face,
        res=res,
        face_type=face_type,
        frames=frames,
        every=every,
        smoothed=not raw,
    )
    with _progress("align") as progress:
        s = export_aligned(cfg, progress)
    out.print(f"{s.out}: {s.written} crop(s) written, {s.skipped} kept, track(s) {', '.join(map(str, s.tracks))}")


def _codec_options(items: list[str] | None) -> dict[str, str]:
    out = {}
    for it in items or []:
        key, sep, value = it.partition("=")
        if not sep or not key:
            raise ConfigError(f"--codec-option {it!r}: write KEY=VALUE, e.g. crf=14")
        out[key] = value
    return out


# The render options, defined once: every render command (beauty, deage, swap, keyframes apply) takes them.
Plate = Annotated[str, typer.Argument(help="Video file, image sequence (plate.####.exr) or folder.")]
Output = Annotated[str, typer.Option("-o", "--output", help="Comp: video file, sequence (comp.####.exr) or still.")]
Shot = Annotated[Path | None, typer.Option(help="Shot folder (default: beside the output).")]
Face = Annotated[Path | None, typer.Option(help="Reference image of the person to change (default: every face).")]
Track = Annotated[int | None, typer.Option(help="Change this track only (see `faceplate faces`).")]
Frames = Annotated[str | None, typer.Option(help="Frame range, e.g. 1001-1100.")]
Matte = Annotated[
    str | None, typer.Option(help="Separate matte (default: alpha of EXR/ProRes 4444, OUT_matte for PNG/TIFF).")
]
Delta = Annotated[str | None, typer.Option(help="Also write comp - plate, e.g. delta.####.exr.")]
Deliver = Annotated[
    list[str] | None,
    typer.Option(help="Compositing deliverables beside the comp: layers (multi-channel EXR), patches (aligned "
                 "faces + transforms); repeatable or comma-separated."),
]  # fmt: skip
PresetName = Annotated[
    str | None, typer.Option("--preset", help="Named preset stored in the shot (review page): its settings win.")
]
Format = Annotated[str | None, typer.Option("--format", help="Writer: exr, png16, tiff16, h264, prores4444...")]
Colorspace = Annotated[str | None, typer.Option(help="Plate colour space (linear, srgb, rec709, acescg...).")]
CodecOption = Annotated[list[str] | None, typer.Option(help="Codec option KEY=VALUE (repeatable).")]
Hands = Annotated[bool, typer.Option(help="Keep hands over the face untouched.")]
Tiles = Annotated[int, typer.Option(help="Also detect on an N x N tile grid (small faces in wide shots).")]
DetectEvery = Annotated[int, typer.Option(help="Run the detector every N frames while tracking.")]
Overwrite = Annotated[bool, typer.Option(help="Replace outputs made by another render or other settings.")]
Glasses = Annotated[
    Literal["auto", "on", "off"],
    typer.Option(help="Hold glasses out of the effect: auto finds dark frames; on also holds out the whole "
                 "eyewear region (clear or thin frames, small faces); off holds out nothing (swap never does)."),
]  # fmt: skip


#: The shared render options: name → (annotation, default). ``render_command`` adds them to a command.
RENDER_OPTIONS: dict[str, tuple[Any, Any]] = {
    "shot": (Shot, None),
    "face": (Face, None),
    "track": (Track, None),
    "frames": (Frames, None),
    "matte": (Matte, None),
    "delta": (Delta, None),
    "deliver": (Deliver, None),
    "preset": (PresetName, None),
    "fmt": (Format, None),
    "colorspace": (Colorspace, None),
    "codec_option": (CodecOption, None),
    "hands": (Hands, True),
    "tiles": (Tiles, 1),
    "detect_every": (DetectEvery, 5),
    "overwrite": (Overwrite, False),
    "glasses": (Glasses, "auto"),
}


def render_command(command: Callable[..., None]) -> Callable[..., None]:
    """Give a render command the shared RENDER_OPTIONS after its own; it receives them as one dict ``opts``."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "opts"]
    kw = inspect.Parameter.KEYWORD_ONLY
    shared = [inspect.Parameter(n, kw, default=d, annotation=a) for n, (a, d) in RENDER_OPTIONS.items()]

    @functools.wraps(command)
    def run(**values: Any) -> None:
        command(**{k: v for k, v in values.items() if k not in RENDER_OPTIONS},
                opts={k: values[k] for k in RENDER_OPTIONS})  # fmt: skip

    run.__signature__ = inspect.Signature([*own, *shared], return_annotation=None)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in (*own, *shared)} | {"return": None}
    return run


def _render_config(plate: str, output: str, opts: dict[str, Any], **extra: Any) -> RenderConfig:
    """The RenderConfig of a render command from its shared options (``opts``) and its own (``extra``)."""
    given = {k: v for k, v in opts.items() if k not in ("fmt", "codec_option")}
    return build(RenderConfig, plate=plate, out=output, format=opts["fmt"],
                 codec_options=_codec_options(opts["codec_option"]), **given, **extra)  # fmt: skip


def _run_render(label: str, cfg: RenderConfig, effect: Effect, what: str) -> None:
    """Render with a progress bar and print the one-line summary."""
    from faceplate.render import render

    with _progress(label) as progress:
        s = render(cfg, effect, progress)
    kept = f", {s.skipped} already written" if s.skipped else ""
    out.print(f"{s.out}: {s.written} frame(s) written{kept}, {s.faces} face(s) {what} in track(s) "
              f"{', '.join(map(str, s.tracks))}; {s.fps:.1f} fps")  # fmt: skip


@app.command()
@render_command
def beauty(
    plate: Plate,
    output: Output,
    strength: Annotated[float, typer.Option(help="Overall strength, 0..1.")] = 0.7,
    smooth: Annotated[bool, typer.Option(help="Smooth skin (frequency separation).")] = True,
    texture: Annotated[float, typer.Option(help="Share of fine skin texture kept, 0..1.")] = 0.5,
    blemish: Annotated[bool, typer.Option(help="Heal small dark or red spots.")] = True,
    wrinkles: Annotated[bool, typer.Option(help="Soften fine lines.")] = True,
    undereye: Annotated[bool, typer.Option(help="Lift dark circles under the eyes.")] = True,
    tone: Annotated[bool, typer.Option(help="Even out blotchy skin colour.")] = True,
    preview: Annotated[bool, typer.Option(help="Only write a labelled before/after PNG and a strength sweep.")] = False,
    preview_frame: Annotated[int | None, typer.Option(help="Frame for --preview (default: mid-track).")] = None,
    *,
    opts: dict[str, Any],
) -> None:
    """Retouch skin through a whole shot: comp (+ matte, + delta) out, eyes, lips and hair untouched."""
    from faceplate.ops.retouch import RetouchSettings
    from faceplate.render import preview as run_preview

    cfg = _render_config(plate, output, opts, strength=strength)
    make = EFFECTS.get("beauty")

    def effect_at(s: float) -> Effect:
        return make(RetouchSettings(s, smooth, texture, blemish, wrinkles, undereye, tone))

    effect = effect_at(cfg.strength)  # settings validated before anything runs
    if preview:
        paths = run_preview(cfg, effect_at, preview_frame)
        out.print("preview: " + ", ".join(map(str, paths)))
        return
    _run_render("beauty", cfg, effect, "retouched")


@app.command()
@render_command
def deage(
    plate: Plate,
    output: Output,
    years: Annotated[float, typer.Option(help="How many years younger (1..40); see the mapping in the docs.")] = 15,
    jowls: Annotated[bool, typer.Option(help="Lift the jowls and jawline.")] = True,
    brows: Annotated[bool, typer.Option(help="Lift the brows.")] = True,
    eyebags: Annotated[bool, typer.Option(help="Reduce eye bags.")] = True,
    wrinkles: Annotated[bool, typer.Option(help="Remove wrinkles (strong retouch).")] = True,
    spots: Annotated[bool, typer.Option(help="Remove age spots.")] = True,
    tone: Annotated[bool, typer.Option(help="Restore skin tone and saturation.")] = True,
    volume: Annotated[bool, typer.Option(help="Restore volume: hollows, cheek fullness, lips, lids.")] = True,
    hair: Annotated[bool, typer.Option(help="Recolour grey hair (person segmentation; a larger head crop).")] = False,
    age: Annotated[
        float | None, typer.Option(help="The actor's age as shot: warns when --years aims below ~20 or at a child.")
    ] = None,
    reference: Annotated[
        list[Path] | None,
        typer.Option(help="Younger images of the same actor: stills, folders of stills or a faceset (repeatable)."),
    ] = None,
    transfer: Annotated[
        float, typer.Option(help="With --reference, no training: share of the stills' skin tone and texture, 0..1.")
    ] = 1.0,
    model: Annotated[Path | None, typer.Option(help="With --reference: the model folder (default beside -o).")] = None,
    train_minutes: Annotated[
        float | None, typer.Option(help="With --reference: train a swap model this long first.")
    ] = None,
    train_iters: Annotated[int | None, typer.Option(help="With --reference: train to this many iterations.")] = None,
    *,
    opts: dict[str, Any],
) -> None:
    """De-age through a whole shot: procedural facelift (no training); with --reference, also the younger
    stills' skin (no training) or, with --train-minutes/--train-iters, a swap model from them."""
    from faceplate.effects.deage import DeageSettings, age_warning

    controls: dict[str, Any] = {"years": years, "jowls": jowls, "brows": brows, "eyebags": eyebags,
                                "wrinkles": wrinkles, "spots": spots, "tone": tone, "volume": volume,
                                "hair": hair}  # fmt: skip
    settings = DeageSettings(**controls)
    if (warning := age_warning(age, years)) is not None:
        out.print(f"[yellow]warning:[/] {warning}")
    elif age is None:
        out.print("note: faceplate does not guess ages; give --age (the actor's age as shot) to be warned when "
                  "--years aims below ~20 apparent years or the face is a child's")  # fmt: skip
    cfg = _render_config(plate, output, opts)
    if reference:
        from faceplate.config import ReferenceDeageConfig
        from faceplate.training.reference_deage import reference_deage

        ref = build(ReferenceDeageConfig, render=cfg, reference=list(reference), model=model, minutes=train_minutes,
                    iters=train_iters, deage=controls, transfer=transfer)  # fmt: skip
        with _progress("deage") as progress:
            s = reference_deage(ref, progress)
        out.print(f"{s.out}: {s.written} frame(s) written, {s.faces} face(s) de-aged from the reference; "
                  f"{s.fps:.1f} fps")  # fmt: skip
        return
    _run_render("deage", cfg, EFFECTS.get("deage")(settings), f"de-aged by {years:g} years")


faceset_app = typer.Typer(help="Build and curate facesets (aligned crops of one person).", no_args_is_help=True)
train_app = typer.Typer(help="Train models.", no_args_is_help=True)
app.add_typer(faceset_app, name="faceset")
app.add_typer(train_app, name="train")


@faceset_app.command("build")
def faceset_build(
    name: Annotated[Path, typer.Argument(help="Faceset folder to create.")],
    sources: Annotated[list[str], typer.Option("--from", help="Plate, still or folder of stills (repeatable).")],
    face: Annotated[Path | None, typer.Option(help="Reference photo: keep only this person.")] = None,
    res: Annotated[int, typer.Option(help="Crop size in pixels.")] = 256,
    face_type: Annotated[str, typer.Option("--type", help="face, whole_face or head.")] = "whole_face",
    every: Annotated[int, typer.Option(help="Keep every Nth frame of plates.")] = 1,
) -> None:
    """Aligned crops of one person from plates, stills and folders of stills."""
    from faceplate.config import FacesetConfig
    from faceplate.training.faceset import build as build_faceset

    cfg = build(FacesetConfig, name=name, sources=list(sources), face=face, res=res, face_type=face_type, every=every)
    with _progress("faceset") as progress:
        fs = build_faceset(cfg, progress)
    out.print(f"{fs.path}: {len(fs)} faces at {fs.res} px ({fs.face_type})")


@faceset_app.command("sort")
def faceset_sort(
    name: Annotated[Path, typer.Argument(help="Faceset folder.")],
    by: Annotated[str, typer.Option(help="blur, yaw, pitch, histogram or identity.")] = "blur",
    drop_blurry: Annotated[float, typer.Option(help="Drop this share of the blurriest faces (0..1).")] = 0.0,
    dedupe: Annotated[bool, typer.Option(help="Drop near-duplicate faces (keeps pose coverage).")] = False,
    compare: Annotated[Path | None, typer.Option(help="Another faceset to show in the pose plot.")] = None,
) -> None:
    """Sort and clean a faceset; writes contact_sheet.png and coverage.png (yaw/pitch) beside it."""
    from faceplate.training.faceset import contact_sheet, coverage_plot, curate, load, save

    fs = load(name)
    before = len(fs)
    fs = curate(fs, by, drop_blurry, dedupe)
    save(fs)
    sheet = contact_sheet(fs, fs.path / "contact_sheet.png")
    plot = coverage_plot(fs, fs.path / "coverage.png", load(compare) if compare else None)
    out.print(f"{fs.path}: {len(fs)} faces (dropped {before - len(fs)}), sorted by {by}; {sheet}, {plot}")


@train_app.command("swap")
def train_swap(
    src: Annotated[Path, typer.Option(help="Source faceset: the face to put in.")],
    dst: Annotated[Path, typer.Option(help="Destination faceset: the shot's actor.")],
    model: Annotated[Path, typer.Option(help="Model folder (created; re-running continues training).")],
    res: Annotated[int | None, typer.Option(help="Model resolution (new models: 128).")] = None,
    arch: Annotated[str | None, typer.Option(help="df or liae (new models: df).")] = None,
    iters: Annotated[int | None, typer.Option(help="Train until the model has this many iterations.")] = None,
    minutes: Annotated[float | None, typer.Option(help="Or train for this long.")] = None,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 8,
    ae_dims: Annotated[int | None, typer.Option(help="Bottleneck size (new models: 256).")] = None,
    e_dims: Annotated[int | None, typer.Option(help="Encoder width (new models: 64).")] = None,
    d_dims: Annotated[int | None, typer.Option(help="Decoder width (new models: 64).")] = None,
    d_mask_dims: Annotated[int | None, typer.Option(help="Mask decoder width (new models: 22).")] = None,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 5e-5,
    ct: Annotated[str, typer.Option(help="Colour transfer of source samples: rct, lct, mkl, idt, sot, none.")] = "rct",
    preview_every: Annotated[int, typer.Option(help="Write preview.png every N iterations.")] = 250,
    gan_power: Annotated[float, typer.Option(help="Adversarial (PatchGAN) weight; 0 = off.")] = 0.0,
    gan_after: Annotated[int, typer.Option(help="Start the adversarial phase at this iteration.")] = 5000,
    bf16: Annotated[
        bool | None,
        typer.Option(
            "--bf16/--no-bf16",
            help="bf16 autocast (default: on CUDA and on CPUs with AMX/AVX512-BF16, where it is 2-5x faster).",
        ),
    ] = None,
) -> None:
    """Train (or continue) a DF/LIAE swap model; writes preview.png and loss.png as it goes."""
    from faceplate.config import TrainConfig
    from faceplate.ops.colour_transfer import COLOUR_TRANSFER
    from faceplate.training.swap import train

    COLOUR_TRANSFER.get(ct)
    cfg = build(TrainConfig, src=src, dst=dst, model=model, res=res, arch=arch, iters=iters, minutes=minutes,
                batch=batch, ae_dims=ae_dims, e_dims=e_dims, d_dims=d_dims, d_mask_dims=d_mask_dims, lr=lr, ct=ct,
                preview_every=preview_every, gan_power=gan_power, gan_after=gan_after, bf16=bf16)  # fmt: skip
    with _progress("train") as progress:
        s = train(cfg, lambda i, n, loss: progress(i, n))
    out.print(f"{s.model}: iteration {s.iteration} ({s.iteration - s.first_iteration} this run, "
              f"{s.its_per_second:.2f} it/s), loss {s.first_loss:.3f} → {s.last_loss:.3f}")  # fmt: skip


@app.command()
@render_command
def swap(
    plate: Plate,
    model: Annotated[Path, typer.Option(help="Trained swap model folder.")],
    output: Output,
    colour: Annotated[str, typer.Option(help="Colour transfer: rct, lct, mkl, idt, sot, none.")] = "rct",
    mask: Annotated[str, typer.Option(help="Mask source: hull, learned, both.")] = "both",
    erode: Annotated[float, typer.Option(help="Erode the mask (px at model size; negative grows).")] = 0.0,
    blur: Annotated[float, typer.Option(help="Feather the mask (px at model size).")] = 4.0,
    poisson: Annotated[bool, typer.Option(help="Poisson (seamless) blend.")] = False,
    sharpen: Annotated[float, typer.Option(help="Sharpen the swapped face, 0..1.")] = 0.0,
    temporal: Annotated[float, typer.Option(help="Temporal smoothing of the swapped face, 0..0.9.")] = 0.0,
    *,
    opts: dict[str, Any],
) -> None:
    """Merge a trained swap model into the plate: comp (+ matte, + delta) on the shared render path."""
    from faceplate.effects.swap import MergeSettings
    from faceplate.models.swap_checkpoint import read_meta

    read_meta(model)
    settings = MergeSettings(colour, mask, erode, blur, poisson, sharpen, temporal)  # type: ignore[arg-type]
    cfg = _render_config(plate, output, opts)
    _run_render("swap", cfg, EFFECTS.get("swap")(model, settings), "swapped")


keyframes_app = typer.Typer(help="Learn an artist's painted fix from a few frames; render it on all.",
                            no_args_is_help=True)  # fmt: skip
app.add_typer(keyframes_app, name="keyframes")


@keyframes_app.command("train")
def keyframes_train(
    plate: Annotated[str, typer.Option(help="The plate the keyframes were painted on.")],
    painted: Annotated[Path, typer.Option(help="Folder of painted frames, numbered like the plate.")],
    model: Annotated[Path, typer.Option(help="Model folder to write.")],
    shot: Annotated[Path | None, typer.Option(help="Shot folder (default: beside the model).")] = None,
    face: Face = None,
    track: Annotated[int | None, typer.Option(help="The painted track.")] = None,
    res: Annotated[int, typer.Option(help="Aligned working size.")] = 256,
    iters: Annotated[int, typer.Option(help="Training iterations.")] = 1500,
    colorspace: Colorspace = None,
) -> None:
    """Train the residual U-Net on (plate, painted) face pairs."""
    from faceplate.config import KeyframeTrainConfig
    from faceplate.training.keyframes import train_keyframes

    cfg = build(KeyframeTrainConfig, plate=plate, painted=painted, model=model, shot=shot, track=track, face=face,
                res=res, iters=iters, colorspace=colorspace)  # fmt: skip
    with _progress("keyframes") as progress:
        s = train_keyframes(cfg, progress)
    out.print(f"{model}: trained on keyframes {s.keyframes} ({s.pairs} faces) in {s.seconds:.0f} s; "
              f"loss {s.loss_first:.4f} → {s.loss_last:.4f}")  # fmt: skip


@keyframes_app.command("apply")
@render_command
def keyframes_apply(
    plate: Plate,
    model: Annotated[Path, typer.Option(help="Keyframe model folder.")],
    output: Output,
    *,
    opts: dict[str, Any],
) -> None:
    """Render the learned fix on every frame (shared render path: comp + matte + delta)."""
    from faceplate.models.keyframes import load_model

    load_model(model)
    cfg = _render_config(plate, output, opts)
    _run_render("keyframes", cfg, EFFECTS.get("keyframes")(model), "changed")


@app.command()
def nuke(
    render: Annotated[str, typer.Argument(help="The comp as rendered with --deliver layers (comp.####.exr, video).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Nuke script to write (shot.nk).")],
    layers: Annotated[str | None, typer.Option(help="Layers EXR sequence (default: COMP_layers.####.exr).")] = None,
    patches: Annotated[Path | None, typer.Option(help="Patches folder (default: COMP_patches, if present).")] = None,
    plate: Annotated[str | None, typer.Option(help="The plate, when it moved since the render.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing script.")] = False,
) -> None:
    """Write a Nuke script rebuilding the render: plate, layers, face over plate, STMaps, CornerPins."""
    from faceplate.deliver.nuke import NukeConfig, write_nuke_script

    cfg = build(NukeConfig, render=render, out=output, layers=layers, patches=patches, plate=plate,
                overwrite=overwrite)  # fmt: skip
    out.print(f"{write_nuke_script(cfg)}: Nuke script of {render}")


@app.command()
def qc(
    render: Annotated[str, typer.Argument(help="The comp to check (comp.####.exr, comp.####.png, video).")],
    shot: Annotated[Path | None, typer.Option(help="Shot folder (default: from the render's record).")] = None,
    reference: Annotated[Path | None, typer.Option(help="Photo of the person: drift is measured to it.")] = None,
    matte: Annotated[str | None, typer.Option(help="The matte (default: comp alpha, else COMP_matte).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Report folder (default SHOT/qc/NAME).")] = None,
    fail_on: Annotated[str, typer.Option(help="Flags that exit 1: any, none, or names (jitter,flicker).")] = "any",
    first_frame: Annotated[int | None, typer.Option(help="Plate frame of a video render's first frame.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a report folder holding other files.")] = False,
    drift_reference: Annotated[float | None, typer.Option(help="dlib distance to the reference [0.6].")] = None,
    drift_median: Annotated[float | None, typer.Option(help="dlib distance to the output's median [0.45].")] = None,
    jitter: Annotated[float | None, typer.Option(help="Extra landmark motion, % eye distance [1].")] = None,
    flicker: Annotated[float | None, typer.Option(help="Extra warp error in the matte, 8-bit codes [1].")] = None,
    matte_edge: Annotated[float | None, typer.Option(help="Matte sliding vs the flow, % eye distance [3].")] = None,
    jitter_px: Annotated[float | None, typer.Option(help="... and at least this many px [1].")] = None,
    matte_edge_px: Annotated[float | None, typer.Option(help="... and at least this many px [2].")] = None,
    outside_tolerance: Annotated[float | None, typer.Option(help="Change allowed off the matte, 8-bit [0.5].")] = None,
    outside_pixels: Annotated[int | None, typer.Option(help="Pixels that may change outside the matte [0].")] = None,
    identity_every: Annotated[int | None, typer.Option(help="Identity every N frames (+ flagged ones) [12].")] = None,
) -> None:
    """Check a render frame by frame (identity, jitter, flicker, matte, missing faces); HTML + JSON report."""
    from faceplate.qc import QcConfig, run_qc, write_report

    limits = {"drift_reference": drift_reference, "drift_median": drift_median, "jitter": jitter, "flicker": flicker,
              "matte_edge": matte_edge, "jitter_px": jitter_px, "matte_edge_px": matte_edge_px,
              "outside_tolerance": outside_tolerance, "outside_pixels": outside_pixels,
              "identity_every": identity_every}  # fmt: skip
    cfg = build(QcConfig, render=render, shot=shot, reference=reference, matte=matte, out=output, fail_on=[fail_on],
                first_frame=first_frame, overwrite=overwrite,
                **{k: v for k, v in limits.items() if v is not None})  # fmt: skip
    with _progress("qc") as progress:
        res = run_qc(cfg, progress)
    page = write_report(res, cfg)
    counts: dict[str, int] = {}
    for fr in res.frames:
        for f in fr.flags:
            counts[f["flag"]] = counts.get(f["flag"], 0) + 1
    flagged = sum(1 for fr in res.frames if fr.flags)
    shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no flags"
    out.print(f"{page}: {len(res.frames)} frames, {flagged} flagged ({shown}); {res.fps:.1f} fps")
    if cfg.fails(res.flag_names):
        raise typer.Exit(1)


def _warning_line(message: Warning | str, category: type[Warning], *args: object, **kw: object) -> None:
    """Warnings print as one line on stderr (no source line)."""
    err.print(f"faceplate: warning: {message}", soft_wrap=True)


INTERRUPTED = "faceplate: interrupted; everything finished before it is kept (run the same command to resume)"


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print one line and exit non-zero; no tracebacks."""
    args = sys.argv[1:] if argv is None else argv
    warnings.showwarning = _warning_line
    try:
        code = app(args=args or ["--help"], standalone_mode=False)
    except FaceplateError as e:
        err.print(f"faceplate: error: {e}", soft_wrap=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.TyperException as e:  # usage errors: unknown option, missing argument...
        err.print(f"faceplate: error: {e.format_message()} (see --help)", soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err.print(INTERRUPTED)
        sys.exit(130)
    except sqlite3.DatabaseError as e:
        err.print(f"faceplate: error: a shot store is corrupt ({e}); delete the shot folder and run "
                  "`faceplate extract` again")  # fmt: skip
        sys.exit(2)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            err.print(f"faceplate: error: disk full writing {e.filename or 'an output'}; free space and run the "
                      "same command to resume")  # fmt: skip
            sys.exit(1)
        err.print(f"faceplate: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), soft_wrap=True)
        sys.exit(1)
    except Exception as e:
        if os.environ.get("FACEPLATE_DEBUG"):
            raise
        err.print(
            f"faceplate: internal error: {type(e).__name__}: {e} (set FACEPLATE_DEBUG=1 for a traceback)",
            soft_wrap=True,
        )
        sys.exit(70)
    if isinstance(code, int) and code == 130:  # typer turns a Ctrl-C outside our stages into a return value
        err.print(INTERRUPTED)
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)
