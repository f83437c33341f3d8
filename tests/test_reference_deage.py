"""deage --reference from younger stills, no training: the calibrated identity gate and the example-based skin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, cli_here, media, run_cli
from faceplate.analysis.faces import interocular
from faceplate.analysis.identity import SAME_PERSON, SAME_PERSON_ACROSS_AGE, Embedder, distance
from faceplate.config import RenderConfig
from faceplate.effects.deage import DeageEffect, DeageSettings
from faceplate.effects.reference import ReferenceDeageEffect, check_references, load_stills, skin_weight
from faceplate.errors import ConfigError
from faceplate.media.plate import open_plate
from faceplate.ops.retouch import band_energy
from faceplate.render import render
from faceplate.render.tracks import ColourPath, aligned_face
from faceplate.store import ShotStore

OLD, YOUNG = "df_img3.jpg", "df_img12.jpg"  # Jennifer Aniston at ~50 and at ~30


@pytest.fixture(scope="module")
def stills() -> dict[str, object]:
    names = (OLD, YOUNG, "df_img13.jpg", "df_img15.jpg", "fr_biden.jpg")
    return {Path(s.path).name: s for s in load_stills(tuple(str(media(n)) for n in names))}


def test_gate_accepts_the_actor_years_younger_and_refuses_another_person(stills: dict) -> None:
    for old, young in ((OLD, YOUNG), ("df_img13.jpg", "df_img15.jpg")):  # ~20 and ~13 years apart
        d = check_references([stills[young]], stills[old].descriptor)[stills[young].path]
        assert d < SAME_PERSON_ACROSS_AGE, (old, young, d)
    assert distance(stills[YOUNG].descriptor, stills[OLD].descriptor) > SAME_PERSON - 0.05  # why a wider gate
    with pytest.raises(ConfigError, match="shows another person") as e:
        check_references([stills[YOUNG], stills["fr_biden.jpg"]], stills[OLD].descriptor)
    assert "\n" not in str(e.value) and "fr_biden.jpg" in str(e.value) and f"{SAME_PERSON_ACROSS_AGE}" in str(e.value)


@pytest.mark.slow
def test_cli_refuses_another_person_a_missing_still_and_a_still_without_a_face(tmp_path: Path) -> None:
    import cv2

    shot = tmp_path / "shot"
    r = cli_here("deage", media(OLD), "-o", tmp_path / "a.png", "--shot", shot, "--reference", media("fr_biden.jpg"))
    assert_one_line_error(r, "shows another person", "fr_biden.jpg", "distance")
    assert not (tmp_path / "a.png").exists()
    r = run_cli("deage", media(OLD), "-o", tmp_path / "a.png", "--reference", tmp_path / "missing.jpg")
    assert_one_line_error(r, "missing.jpg", "does not exist")
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((200, 200, 3), 120, np.uint8))
    r = cli_here("deage", media(OLD), "-o", tmp_path / "a.png", "--shot", shot, "--reference", tmp_path / "wall.png")
    assert_one_line_error(r, "no face", "wall.png")


@pytest.mark.slow
def test_deage_reference_takes_the_younger_skin_and_leaves_the_rest(tmp_path: Path, stills: dict) -> None:
    shot = tmp_path / "shot"
    r = cli_here("deage", media(OLD), "-o", tmp_path / "ref.png", "--shot", shot, "--reference", media(YOUNG),
                 "--years", "10")  # fmt: skip
    assert r.returncode == 0, r.stderr
    read = lambda p: np.asarray(open_plate(p).read(0, display=True))  # noqa: E731
    plate, out = read(media(OLD)), read(tmp_path / "ref.png")
    matte = np.asarray(open_plate(tmp_path / "ref_matte.png").read(0))[..., 0]
    assert np.array_equal(out[matte == 0], plate[matte == 0])  # outside the matte: the plate as it was
    assert 0 < (matte > 0).mean() < 0.35 and (out != plate).any()  # the face (a close portrait), not the frame
    # the de-aged face: the skin's wrinkle band below the procedural de-age's, measured where it works
    eff = ReferenceDeageEffect(DeageSettings(years=10), (str(media(YOUNG)),))
    with ShotStore.open(shot) as store, open_plate(media(OLD)) as p:
        row = store.faces_in_frame(0)[0]
        res = eff.resolution(interocular(row.best))
        face = aligned_face(p.read(0, native=True), row, res, eff.face_type, ColourPath(p.info.colorspace))[0]
    ctx = eff.prepare([face])
    mine, plain = eff.apply(face, ctx), DeageEffect(eff.settings).apply(face, ctx.deage)
    comp = lambda e: face.image + e.matte[..., None] * (e.image - face.image)  # noqa: E731
    skin = skin_weight(face, ctx.deage.skin)
    e = {k: band_energy(v, skin, face.iod) for k, v in (("plate", face.image), ("ref", comp(mine)),
                                                         ("proc", comp(plain)))}  # fmt: skip
    assert e["ref"] < 0.98 * e["proc"] and e["ref"] < e["plate"], e
    # the actor still looks like the younger self: the transfer costs no identity beyond the procedural de-age
    with ShotStore.open(shot) as store:
        lm = store.faces_in_frame(0)[0].best
    emb, young = Embedder(), stills[YOUNG].descriptor
    proc = RenderConfig(plate=str(media(OLD)), out=str(tmp_path / "proc.png"), shot=shot)  # in-process: no CLI start-up
    assert render(proc, DeageEffect(DeageSettings(years=10))).written == 1
    d = {k: distance(emb(v, lm), young) for k, v in (("plate", plate), ("ref", out),
                                                     ("proc", read(tmp_path / "proc.png")))}  # fmt: skip
    print(e, d)
    assert d["ref"] <= d["proc"] + 0.01 and d["ref"] < SAME_PERSON_ACROSS_AGE, d
