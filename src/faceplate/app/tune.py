"""Tune on a frame: the settings form of an effect, built from its settings (the effect's dataclasses, read
as a JSON schema through pydantic), and a frame re-rendered through the render path
(:class:`faceplate.render.run.FrameRenderer`) with the settings of the form.

Settings travel as a *patch* nested like the effect's record (``{"settings": {"strength": 0.4}}``), the form
that presets, per-range overrides and render jobs store too.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from faceplate.config import ExtractConfig, RenderConfig
from faceplate.effects import EFFECTS, Effect
from faceplate.errors import ConfigError
from faceplate.render.run import FrameRenderer, with_settings
from faceplate.store import ShotStore

TUNABLE = ("beauty", "deage", "swap", "keyframes")  # the effects of the tune panel
NEEDS_MODEL = ("swap", "keyframes")
HIDDEN = {"matte", "model_dir"}  # effect fields that are internals (the skin matte's tuning) or not settings
# bounds (min, max, step) and help of number settings: the settings dataclasses carry none (they check their
# range when built); a number not listed gets 0..max(1, 4 x its default)
BOUNDS: dict[str, tuple[float, float, float]] = {
    "strength": (0.0, 1.0, 0.01),
    "texture": (0.0, 1.0, 0.01),
    "lift": (0.0, 1.0, 0.01),
    "years": (1.0, 40.0, 0.5),
    "erode": (-20.0, 20.0, 0.5),
    "blur": (0.0, 40.0, 0.5),
    "sharpen": (0.0, 1.0, 0.01),
    "temporal": (0.0, 0.9, 0.05),
}
HELP = {
    "strength": "how much of the retouch is applied",
    "texture": "share of the pores kept",
    "lift": "share of the under-eye shade lifted",
    "years": "years taken off",
    "colour": "colour transfer of the model's face to the plate",
    "mask": "which mask merges the face: the landmarks' hull, the model's learned one, or both",
    "erode": "mask erosion, px at model resolution (negative grows it)",
    "blur": "mask feather, px at model resolution",
    "crop": "aligned crop: whole_face, or head (reaches a tall forehead, ~2x the cost)",
}
CHOICES = {"crop": ["whole_face", "head"]}


def make_effect(name: str, patch: dict[str, Any], model: str | None = None) -> Effect:
    """The effect ``name`` (with its ``model`` folder for swap and keyframes) with the settings ``patch``."""
    if name not in TUNABLE:
        raise ConfigError(f"unknown effect {name!r} to tune; valid: {', '.join(TUNABLE)}")
    check_patch(form(name), patch)
    make = EFFECTS.get(name)
    if name in NEEDS_MODEL:
        if not model or not Path(model).is_dir():
            raise ConfigError(f"{name} needs its model folder (got {model or 'none'})")
        return with_settings(make(Path(model)), patch)
    return with_settings(make(), patch)


KINDS: dict[str, tuple[type, ...]] = {"range": (int, float), "toggle": (bool,), "select": (str,), "text": (str,)}
WANT = {"range": "a number", "toggle": "true or false", "text": "text"}


def _leaves(patch: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of each leaf of a nested settings patch."""
    out: list[tuple[str, Any]] = []
    for k, v in patch.items():
        out += _leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]
    return out


def check_patch(controls: list[dict[str, Any]], patch: Any) -> None:
    """ConfigError (one line) when ``patch`` is not an object or gives a setting of the form a value of the
    wrong type (a number a string, a toggle a number, a menu a choice it lacks); unknown keys are left to
    the effect, which names them."""
    if not isinstance(patch, dict):
        raise ConfigError(f'settings must be an object such as {{"settings": {{"strength": 0.4}}}}, got {patch!r}')
    by = {c["key"]: c for c in controls}
    groups = {k.rsplit(".", 1)[0] for k in by if "." in k}
    for key, value in _leaves(patch):
        if key in groups:
            raise ConfigError(f"{key}: expected an object of settings, got {value!r}")
        c = by.get(key)
        if c is None:
            continue
        ok = isinstance(value, KINDS[c["kind"]]) and not (c["kind"] == "range" and isinstance(value, bool))
        if not ok or (c["kind"] == "select" and value not in c["choices"]):
            want = f"one of {', '.join(c['choices'])}" if c["kind"] == "select" else WANT[c["kind"]]
            raise ConfigError(f"{key}: expected {want}, got {value!r}")


def _default_effect(name: str) -> Any:
    """An effect class's default instance, or its class when it needs a model (fields only)."""
    cls = EFFECTS.get(name)
    return cls if name in NEEDS_MODEL else cls()


def form(name: str) -> list[dict[str, Any]]:
    """The settings form of effect ``name``: one control per setting (dotted ``key``, ``kind`` range |
    toggle | select | text, default, bounds or choices, help), from the effect's settings dataclasses."""
    if name not in TUNABLE:
        raise ConfigError(f"unknown effect {name!r} to tune; valid: {', '.join(TUNABLE)}")
    eff = _default_effect(name)
    out: list[dict[str, Any]] = []
    for f in dataclasses.fields(eff):
        if f.name in HIDDEN:
            continue
        default = getattr(eff, f.name, None) if not isinstance(eff, type) else _field_default(f)
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            out += _controls(type(default), default, f"{f.name}.")
        elif isinstance(default, bool | int | float | str):
            out += _controls(None, {f.name: default}, "")
    return out


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def _controls(cls: type | None, values: Any, prefix: str) -> list[dict[str, Any]]:
    """Controls of a settings dataclass ``cls`` (its JSON schema: types, enums) at ``values``."""
    schema = TypeAdapter(cls).json_schema()["properties"] if cls is not None else {}
    items = dataclasses.asdict(values).items() if cls is not None else values.items()
    return [_control(prefix + k, k, v, schema.get(k, {})) for k, v in items if isinstance(v, bool | int | float | str)]


def _control(key: str, name: str, default: Any, schema: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = {"key": key, "name": name, "default": default, "help": HELP.get(name, "")}
    choices = schema.get("enum") or CHOICES.get(name) or _registry_choices(name)
    if isinstance(default, bool):
        return {**c, "kind": "toggle"}
    if isinstance(default, int | float):
        lo, hi, step = BOUNDS.get(name, (0.0, max(1.0, 4 * abs(float(default))), 0.01))
        return {**c, "kind": "range", "min": lo, "max": hi, "step": step}
    if choices:
        return {**c, "kind": "select", "choices": list(choices)}
    return {**c, "kind": "text"}


def _registry_choices(name: str) -> list[str] | None:
    if name != "colour":
        return None
    from faceplate.ops.colour_transfer import COLOUR_TRANSFER

    return COLOUR_TRANSFER.names()


def shot_render_config(
    shot: Path, out: str, frames: str | None = None, plate: str | None = None, delta: str | None = None
) -> RenderConfig:
    """The render of the shot folder ``shot`` (its plate, or ``plate`` when it moved) to ``out`` (and its
    ``delta`` output)."""
    with ShotStore.open(shot) as store:
        info = store.plate
    first = info.first_frame if info.kind == "video" else 0
    ext = ExtractConfig(plate=plate or info.path, shot=shot, frames=frames, first_frame=first)
    return RenderConfig(extract=ext, out=out, delta=delta)


def write_shot(shot: Path, fn: Callable[[ShotStore], Any]) -> Any:
    """``fn(store)`` on the shot's store opened to write (for a moment: the folder's lock is shared with this
    process's renders, and waited for briefly when another process holds it)."""
    with ShotStore.open(shot) as r:
        info = r.plate
    with ShotStore.create(shot, info) as store:
        return fn(store)


class Tuner:
    """A shot's frames re-rendered with the form's settings; the plate, store and track contexts stay open
    between requests (one frame at a time: requests wait for each other)."""

    def __init__(self, shot: Path, plate: str | None = None) -> None:
        self.shot, self.plate = shot, plate
        self._renderer: FrameRenderer | None = None
        self.lock = threading.Lock()

    def render(self, effect: Effect, frame: int) -> tuple[Any, Any]:
        """(comp, matte) of plate frame ``frame`` with ``effect``."""
        with self.lock:
            return self._open().render(effect, frame, deep=True)  # as a job's PNG16 comp (and EXR, TIFF16)

    def _open(self) -> FrameRenderer:
        """The renderer, made on first use (call with the lock held)."""
        if self._renderer is None:
            self._renderer = FrameRenderer(shot_render_config(self.shot, str(self.shot / "tune.png"), plate=self.plate))
        return self._renderer

    def prime(self, effect: Effect) -> None:
        """Open the plate and read the tracks' samples now (and ``effect``'s contexts), so the page's first
        tuned frame does not wait for them: in a thread of its own at server start."""
        with self.lock, ShotStore.open(self.shot) as store:
            self._open().tracks(store, effect)

    def close(self) -> None:
        with self.lock:
            if self._renderer is not None:
                self._renderer.close()
                self._renderer = None
