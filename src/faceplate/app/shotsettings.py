"""A shot's stored settings outside the page: per-range overrides (which renders honour) and named presets,
listed, added and removed from the command line (``faceplate overrides``, ``faceplate presets``) through the
same checks as the review page's tune panel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faceplate.app.tune import TUNABLE, make_effect, write_shot
from faceplate.config import Override, Preset
from faceplate.errors import ConfigError
from faceplate.store import ShotStore


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``["settings.strength=0.3", "merge.colour=rct"]`` → the nested patch ``{"settings": {"strength": 0.3},
    "merge": {"colour": "rct"}}``; values read as JSON (numbers, true/false), else as text."""
    patch: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: write it as NAME=VALUE, e.g. settings.strength=0.3")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        *heads, leaf = key.strip().split(".")
        node = patch
        for h in heads:
            node = node.setdefault(h, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {h} is a value and a group of settings at once")
        node[leaf] = value
    return patch


def parse_frames(text: str) -> tuple[int, int | None]:
    """``"40-80"`` → (40, 80); ``"40-"`` (from 40 to the end) → (40, None); ``"40"`` → (40, 40)."""
    first, sep, last = text.strip().partition("-")
    try:
        a = int(first)
        b = None if sep and not last.strip() else int(last) if sep else a
    except ValueError:
        raise ConfigError(f"frames {text!r}: write FIRST-LAST, FIRST- (to the end) or one frame") from None
    return a, b


def _effect(name: str) -> str:
    if name not in TUNABLE:
        raise ConfigError(f"unknown effect {name!r}; valid: {', '.join(TUNABLE)}")
    return name


def list_overrides(shot: Path, effect: str) -> list[Override]:
    """The shot's overrides of ``effect``, in the order they were stored."""
    with ShotStore.open(shot) as store:
        rows = store.overrides(_effect(effect))
    return [Override(id=i, first=a, last=b, settings=v) for i, a, b, v in rows]


def add_override(shot: Path, effect: str, frames: str, patch: dict[str, Any], model: Path | None = None) -> int:
    """Store an override of ``effect`` on ``frames`` (see :func:`parse_frames`) with the settings ``patch``,
    checked as the tune panel checks it (``model``: the model folder of swap and keyframes); returns its id."""
    first, last = parse_frames(frames)
    o = Override(first=first, last=last, settings=patch)
    make_effect(_effect(effect), o.settings, None if model is None else str(model))
    with ShotStore.open(shot) as store:
        span = store.plate.frames
    if not (span.first <= o.first <= span.last) or (o.last is not None and o.last > span.last):
        raise ConfigError(f"frames {frames} are outside the shot's plate ({span.first}-{span.last})")
    return int(write_shot(shot, lambda s: s.add_override(effect, o.first, o.last, o.settings)))


def remove_overrides(shot: Path, effect: str, ids: list[int]) -> None:
    """Remove overrides ``ids`` of ``effect``; ConfigError naming the ids it does not have (nothing removed)."""
    known = {o.id for o in list_overrides(shot, effect)}
    missing = [i for i in ids if i not in known]
    if missing:
        have = ", ".join(map(str, sorted(known))) or "none"
        raise ConfigError(f"no {effect} override {', '.join(map(str, missing))} in {shot} (it has: {have})")

    def drop(store: ShotStore) -> None:
        for i in ids:
            store.delete_override(i)

    write_shot(shot, drop)


def list_presets(shot: Path, effect: str | None = None) -> list[Preset]:
    """The shot's named presets (of ``effect``, or all), by effect and name."""
    with ShotStore.open(shot) as store:
        rows = store.presets(None if effect is None else _effect(effect))
    return [Preset(effect=e, name=n, settings=v) for e, n, v in rows]


def remove_preset(shot: Path, effect: str, name: str) -> None:
    """Remove the named preset of ``effect``; ConfigError when the shot has none of that name."""
    if not write_shot(shot, lambda s: s.delete_preset(_effect(effect), name)):
        have = ", ".join(p.name for p in list_presets(shot, effect)) or "none"
        raise ConfigError(f"no {effect} preset {name!r} in {shot} (it has: {have})")
