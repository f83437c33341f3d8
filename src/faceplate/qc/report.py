"""The QC report: ``qc.json`` (per-frame values, flags, summary), ``index.html`` (plots of each measure with
its threshold, the flagged frames, worst-frame thumbnails as PNGs beside it; nothing from a CDN), and the
flags the review app marks come from there (``faceplate.qc.files.latest_flags``)."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.fileio import atomic_write_bytes, atomic_write_text
from faceplate.qc import measures as m
from faceplate.qc.config import FLAGS, MEASURES, QcConfig
from faceplate.qc.files import REPORT, claim_dir, report_dir
from faceplate.qc.run import Display, FrameQc, QcResult

PLOTTED = ("drift_reference", "drift_median", "jitter", "flicker", "matte_edge", "matte_change")
THUMBS = 6  # worst frames shown
THUMB_H = 192
DIFF_GAIN = 8.0


def _value(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 4)


def frame_json(fr: FrameQc) -> dict[str, Any]:
    faces = [{"track": t, "box": list(fq.box), "not_rendered": fq.why, "face_found": fq.landmarks is not None,
              **{k: _value(v) for k, v in fq.values.items()}} for t, fq in fr.faces.items()]  # fmt: skip
    return {"frame": fr.frame, "missing": fr.missing, "nonfinite": fr.nonfinite, "outside_matte": fr.outside,
            "faces": faces, "flags": fr.flags}  # fmt: skip


def summary(res: QcResult, cfg: QcConfig) -> dict[str, Any]:
    counts = {name: 0 for name in FLAGS}
    for fr in res.frames:
        for f in fr.flags:
            counts[f["flag"]] += 1
    worst: dict[str, dict[str, float]] = {}
    for name in PLOTTED:
        vals = [(v, fr.frame) for fr in res.frames for fq in fr.faces.values()
                if (v := fq.values.get(name)) is not None]  # fmt: skip
        if vals:
            top, frame = max(vals)
            worst[name] = {"frame": frame, "value": round(top, 4)}
    return {"frames": len(res.frames), "flagged_frames": sum(1 for fr in res.frames if fr.flags),
            "flags": {k: v for k, v in counts.items() if v}, "worst": worst, "fails": cfg.fails(res.flag_names),
            "seconds": round(res.seconds, 2), "fps": round(res.fps, 2)}  # fmt: skip


def thresholds(cfg: QcConfig) -> dict[str, Any]:
    keep = set(QcConfig.model_fields) - {"render", "shot", "matte", "reference", "out", "overwrite", "first_frame"}
    return {k: v for k, v in cfg.model_dump().items() if k in keep}


def write_report(res: QcResult, cfg: QcConfig) -> Path:
    """qc.json, index.html, plots and thumbnails into the report folder; returns the HTML's path."""
    folder = report_dir(cfg.out, res.render, res.shot)
    claim_dir(folder, res.render, cfg.overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    data = {"render": res.render, "plate": res.plate, "shot": str(res.shot), "tracks": res.tracks,
            "reference": res.reference, "thresholds": thresholds(cfg), "summary": summary(res, cfg),
            "frames": [frame_json(fr) for fr in res.frames]}  # fmt: skip
    plots = [p for name in PLOTTED if (p := plot(res, name, getattr(cfg, name, None), folder)) is not None]
    thumbs = thumbnails(res, folder) if res.comp is not None else []
    atomic_write_text(folder / "index.html", page(data, plots, thumbs))
    atomic_write_text(folder / REPORT, json.dumps(data, indent=1))
    return folder / "index.html"


def plot(res: QcResult, name: str, threshold: float | None, folder: Path) -> str | None:
    """``name`` over frames per track with its threshold line (if it has one) and the flagged frames in red →
    a PNG's name."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 2.4), dpi=80)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.88, bottom=0.2)
    drawn = False
    for t in res.tracks:
        pts = [(fr.frame, v) for fr in res.frames if t in fr.faces and (v := fr.faces[t].values.get(name)) is not None]
        if not pts:
            continue
        drawn = True
        x, y = zip(*pts, strict=True)
        ax.plot(x, y, ".-", lw=1, ms=3, label=f"track {t}")
        at = dict(pts)
        bad = [(fr.frame, at.get(fr.frame, f["value"])) for fr in res.frames for f in fr.flags
               if f["flag"] == name and f["track"] == t]  # fmt: skip
        if bad:
            ax.plot(*zip(*bad, strict=True), "o", color="red", ms=6, mfc="none", label="flagged")
    if not drawn:
        plt.close(fig)
        return None
    if threshold is not None:
        ax.axhline(threshold, color="red", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_title(f"{name}: {FLAGS.get(name, MEASURES.get(name, ''))}", fontsize=8)
    ax.set_xlabel("frame", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="upper right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(folder / f"plot_{name}.png", buf.getvalue())
    return f"plot_{name}.png"


def _severity(fr: FrameQc, cfg_values: dict[str, float]) -> float:
    """How bad a frame is: flags first (each flag's value over its threshold), unflagged last."""
    s = 0.0
    for f in fr.flags:
        thr = cfg_values.get(f["flag"])
        s += 10.0 + (f["value"] / thr if thr and f["value"] is not None else 1.0)
    return s


def thumbnails(res: QcResult, folder: Path) -> list[tuple[str, str]]:
    """plate | comp | x8 difference | matte of the worst flagged frames → [(PNG name, caption)]."""
    from faceplate.media.plate import open_plate

    render, matte = res.comp, res.matte
    assert render is not None
    worst = sorted((fr for fr in res.frames if fr.flags and not fr.missing), key=lambda fr: -_severity(fr, {}))
    out = []
    info_cs = render.colorspace
    view = Display(info_cs)
    with open_plate(res.plate, colorspace=info_cs, first_frame=res.first_frame) as plate:
        first = plate.info.first_frame
        for fr in worst[:THUMBS]:
            raw = render.read(fr.frame)
            comp = None if raw is None else m.unit_float(raw)
            mat = comp[..., 3] if comp is not None and matte is None and comp.shape[2] > 3 else None
            if matte is not None:
                mm = matte.read(fr.frame)
                mat = None if mm is None else m.unit_float(mm[..., 0])
            if comp is None or mat is None or fr.frame < first:
                continue
            pl = plate.read(fr.frame)
            tracked = [f["track"] for f in fr.flags if f["track"] in fr.faces]  # the flagged face, else the first
            face = fr.faces[tracked[0]] if tracked else next(iter(fr.faces.values()), None)
            box = face.box if face is not None else (0, 0, pl.shape[1], pl.shape[0])
            panels = [pl, comp[..., :3], np.abs(comp[..., :3] - pl) * DIFF_GAIN, np.repeat(mat[..., None], 3, 2)]
            tiles = [_tile(view(m.crop(p, box)) if i < 2 else _u8(m.crop(p, box))) for i, p in enumerate(panels)]
            name = f"thumb_{fr.frame}.png"
            ok, png = cv2.imencode(".png", cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR))
            if ok:
                atomic_write_bytes(folder / name, png.tobytes())
                flags = ", ".join(sorted({f["flag"] for f in fr.flags}))
                out.append((name, f"frame {fr.frame}: {flags}"))
    return out


def _u8(a: NDArray[np.float32]) -> NDArray[np.uint8]:
    return np.asarray(np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255), np.uint8)


def _tile(img: NDArray[np.uint8]) -> NDArray[np.uint8]:
    h, w = img.shape[:2]
    return np.asarray(cv2.resize(img, (max(1, round(w * THUMB_H / h)), THUMB_H), interpolation=cv2.INTER_AREA))


def page(data: dict[str, Any], plots: list[str], thumbs: list[tuple[str, str]]) -> str:
    """The HTML report (self-contained but for the PNGs beside it)."""
    e = html.escape
    s = data["summary"]
    rows = "".join(
        f"<tr><td>{fr['frame']}</td><td>{e(f['flag'])}</td><td>{'' if f['track'] is None else f['track']}</td>"
        f"<td>{'' if f['value'] is None else f['value']}</td><td>{e(f.get('note', ''))}</td></tr>"
        for fr in data["frames"] for f in fr["flags"]
    )  # fmt: skip
    counts = ", ".join(f"{k}: {v}" for k, v in s["flags"].items()) or "none"
    thr = "".join(f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in data["thresholds"].items())
    imgs = "".join(f'<p><img src="{p}" alt="{p}"></p>' for p in plots)
    th = "".join(f'<figure><img src="{n}" alt="{e(c)}"><figcaption>{e(c)}</figcaption></figure>' for n, c in thumbs)
    legend = "".join(f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in FLAGS.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>QC {e(data["render"])}</title>
<style>body{{font:13px sans-serif;margin:20px;background:#1c1c1c;color:#ddd}} table{{border-collapse:collapse}}
td,th{{border:1px solid #555;padding:2px 8px}} img{{max-width:100%;background:#fff}} .bad{{color:#f66}}
figure{{display:inline-block;margin:6px}}</style></head><body>
<h1>QC of {e(data["render"])}</h1>
<p>plate {e(data["plate"])} · shot {e(data["shot"])} · tracks {e(str(data["tracks"]))} ·
reference {e(str(data["reference"] or "plate track median"))}</p>
<p class="{"bad" if s["flagged_frames"] else ""}">{s["frames"]} frames, {s["flagged_frames"]} flagged
({e(counts)}); {s["fps"]} fps</p>
<h2>Measures</h2>{imgs}
<h2>Flagged frames</h2>
<table><tr><th>frame</th><th>flag</th><th>track</th><th>value</th><th>note</th></tr>{rows}</table>
<h2>Worst frames (plate | comp | x{DIFF_GAIN:g} difference | matte)</h2>{th or "<p>none flagged</p>"}
<h2>Flags</h2><ul>{legend}</ul>
<h2>Thresholds</h2><table>{thr}</table>
</body></html>
"""
