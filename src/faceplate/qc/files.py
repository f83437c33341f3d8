"""Where a QC report goes and what is there: the report folder (refusing one holding other files), reading a
report back, and the newest report's flags for the review app's scrub bar (JSON only: no plotting imports)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from faceplate.errors import ConfigError

REPORT = "qc.json"


def report_dir(out: Path | None, render: str, shot: Path) -> Path:
    """``out``, else SHOT/qc/<render folder>_<render name> (``renders/v2/comp.####.exr`` → ``v2_comp.exr``)."""
    if out is not None:
        return out
    p = Path(render).resolve()
    name = re.sub(r"[.]?(#+|@+|%0?\d*d)", "", p.name).strip("._") or "render"
    return shot / "qc" / f"{p.parent.name}_{name}".strip("_")


def check_dir(folder: Path, render: str, overwrite: bool) -> bool:
    """Whether the report folder must be cleared first: it holds files other than an earlier QC report of
    ``render``. ConfigError (before any work) when it does and ``overwrite`` is not set, or it is a file."""
    if not folder.exists():
        return False
    if not folder.is_dir():
        raise ConfigError(f"the report folder {folder} is a file; give a folder with -o")
    if not any(folder.iterdir()):
        return False
    old = read_report(folder / REPORT)
    if old is not None and old.get("render") == str(render):
        return False
    if not overwrite:
        raise ConfigError(f"report folder {folder} holds other files; pass --overwrite to replace them, or -o another")
    return True


def claim_dir(folder: Path, render: str, overwrite: bool) -> None:
    """:func:`check_dir`, then clear the folder when it must be; an earlier report of this render loses its
    plots and thumbnails (the new report writes its own)."""
    if check_dir(folder, render, overwrite):
        for e in folder.iterdir():
            shutil.rmtree(e) if e.is_dir() else e.unlink()
    elif folder.is_dir():
        for e in [*folder.glob("plot_*.png"), *folder.glob("thumb_*.png")]:
            e.unlink()


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "frames" in data else None


def latest_flags(folders: list[Path]) -> list[dict[str, Any]]:
    """The flags of the newest ``qc.json`` in ``folders``' sub-folders: [{frame, track, value, flag}]."""
    reports = [p for f in folders if f.is_dir() for p in f.glob(f"*/{REPORT}")]
    for path in sorted(reports, key=lambda p: p.stat().st_mtime, reverse=True):
        data = read_report(path)
        if data is not None:
            return [{"frame": fr["frame"], "track": f["track"], "value": f["value"], "flag": f["flag"]}
                    for fr in data["frames"] for f in fr["flags"]]  # fmt: skip
    return []
