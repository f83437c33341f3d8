"""The training monitor: what a swap or keyframe training writes into its model folder, read while another
process trains: the loss log (``losses.jsonl``: one ``{"iteration", "loss"}`` object a line, appended as it
goes) and the latest preview grid (``preview.png``, swap)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faceplate.errors import ConfigError

LOSS_LOG = "losses.jsonl"
PREVIEW = "preview.png"


def read_losses(folder: Path) -> list[tuple[int, float]]:
    """(iteration, loss) of the folder's loss log, in order; a line still being written is skipped."""
    try:
        text = (folder / LOSS_LOG).read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
            out.append((int(row["iteration"]), float(row["loss"])))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def monitor(folder: Path) -> dict[str, Any]:
    """The monitor's view of a model folder: its losses and the preview's stamp (None: no preview yet)."""
    if not folder.is_dir():
        raise ConfigError(f"model folder {folder} does not exist")
    preview = folder / PREVIEW
    stamp = preview.stat().st_mtime_ns if preview.is_file() else None
    return {"model": str(folder), "losses": read_losses(folder), "preview": stamp}
