"""Which files the page may name: a model folder (tune, render jobs, the training monitor) must be one given
at startup (``--model DIR``, or a folder inside one) or a folder inside the shot; a job's output must lie in
the shot folder or a folder of the ``--render`` outputs. Paths are resolved first (``..``, symlinks), so
neither a ``..`` nor a link leads out. Pure functions of the paths and the allowed roots.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from faceplate.errors import ConfigError


def within(path: Path, roots: Sequence[Path]) -> bool:
    """Whether the resolved ``path`` is one of ``roots`` (resolved) or lies inside one."""
    p = path.resolve()
    return any(p == r.resolve() or p.is_relative_to(r.resolve()) for r in roots)


def model_folder(value: str | None, roots: Sequence[Path]) -> str | None:
    """The resolved model folder ``value`` (None: none given); ConfigError unless it is inside ``roots``."""
    if value is None or not str(value).strip():
        return None
    path = Path(str(value).strip()).expanduser()
    if not within(path, roots):
        names = ", ".join(str(r) for r in roots)
        raise ConfigError(
            f"model folder {value} is not one this server may read (allowed: {names}); "
            "start `faceplate review` with --model DIR to add it"
        )
    return str(path.resolve())


def output_path(value: str | None, shot: Path, roots: Sequence[Path]) -> str | None:
    """A job's output ``value`` resolved (a relative one within the shot folder; None: the default);
    ConfigError unless it lies inside ``roots``."""
    if value is None or not str(value).strip():
        return None
    path = Path(str(value).strip())
    path = path if path.is_absolute() else shot / path
    if path.name in ("", ".", "..") or not within(path.parent, roots):
        raise ConfigError(f"output {value} is outside the shot folder and the render folders; pick one inside them")
    return str(path.parent.resolve() / path.name)
