"""Hands on frames the hand pass skips (issue #14): is a moving hand over the face still left alone?

While hands are in view the hand pass looks every other frame (extract.HANDS_IN_VIEW_EVERY); a skipped frame
holds out the hands of its checked neighbours (and, in a one-pass render, their midpoints). For each
hand-labelled frame, analyse a run that starts ``--before`` frames earlier (odd: the labelled frame is then
skipped, even: checked), render it in one pass (fresh shot) and in two passes (analysed shot), and measure
the change on the labelled occluders as bench_occluders does (goal mean ≤ 0.5/255, max ≤ 2/255).

    .venv/bin/python bench/bench_hand_cadence.py [--labels NAME...] [--effects beauty deage] [--before 11 10]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench_occluders import MEDIA, MeasureFailure, effects, measures, read01
from labels import Label, load_labels

HAND_LABELS = ("fr_short_hamilton_clip_0130", "fr_short_hamilton_clip_0190")


def render_run(label: Label, name: str, before: int, one_pass: bool, tmp: Path) -> tuple[np.ndarray, ...]:
    """(plate, comp, matte, checked) at the labelled frame of a render of frames label.frame - before to
    label.frame + 4; ``checked``: whether the hand pass looked at that frame."""
    from faceplate.config import ExtractConfig, RenderConfig
    from faceplate.extract import extract
    from faceplate.media import open_plate
    from faceplate.render import render
    from faceplate.store import ShotStore

    plate = str(MEDIA / label.media)
    frames = f"{label.frame - before}-{label.frame + 4}"
    if not one_pass:
        extract(ExtractConfig(plate=plate, shot=tmp / "shot", frames=frames))
    cfg = RenderConfig(plate=plate, shot=tmp / "shot", frames=frames, out=str(tmp / "c.####.png"),
                       matte=str(tmp / "m.####.png"), format="png16")  # fmt: skip
    summary = render(cfg, effects()[name]())
    if one_pass == ("extract" in summary.stages):
        raise MeasureFailure(f" expected a {'one' if one_pass else 'two'}-pass render")
    with ShotStore.open(tmp / "shot") as store:
        row = store.conn.execute("SELECT hands_checked FROM frames WHERE frame = ?", (label.frame,)).fetchone()
    with open_plate(plate) as p:
        rgb = p.read(label.frame, display=True).astype(np.float32) / 255.0
    comp, matte = read01(tmp / f"c.{label.frame:04d}.png"), read01(tmp / f"m.{label.frame:04d}.png")
    return rgb, comp, matte, np.array(bool(row[0]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", nargs="*", default=list(HAND_LABELS))
    ap.add_argument("--effects", nargs="*", default=["beauty", "deage"])
    ap.add_argument("--before", nargs="*", type=int, default=[11, 10])
    a = ap.parse_args()
    print("| frame | effect | run starts | hand pass at the frame | path | change on occluders mean / max (1/255) |")
    print("|---|---|---|---|---|---|")
    for label in load_labels(*a.labels):
        for name in a.effects:
            for before in a.before:
                for one_pass in (True, False):
                    path = "one pass" if one_pass else "two passes"
                    try:
                        with tempfile.TemporaryDirectory() as tmp:
                            plate, comp, matte, checked = render_run(label, name, before, one_pass, Path(tmp))
                        m = measures(label, plate, comp, matte)
                    except MeasureFailure as e:
                        print(f"| {label.name} | {name} | -{before} | | {path} | ERROR: {e} |", flush=True)
                        continue
                    seen = "looked" if checked else "skipped"
                    print(f"| {label.name} | {name} | -{before} | {seen} | {path} | "
                          f"{m['occ_mean']:.2f} / {m['occ_max']:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
