"""Calibrate the reference de-age identity gate: dlib distances between all pairs of the dev stills.

The same actor years apart is further away than dlib's usual 0.6 "same person" threshold (Aniston ~30 vs
~50), so ``deage --reference`` gates on ``SAME_PERSON_ACROSS_AGE``. This prints every pair's distance
(faceplate's Embedder on faceplate's landmarks, as the gate measures it), the same-person pairs, the
closest different-person pair and the margins of the threshold to both.

    FACEPLATE_THREADS=1 .venv/bin/python bench/bench_identity_gate.py
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path

from bench_extract import machine
from faceplate.analysis.identity import SAME_PERSON, SAME_PERSON_ACROSS_AGE, distance
from faceplate.review import reference_face

MEDIA = Path(os.environ.get("FACEPLATE_MEDIA", Path(__file__).resolve().parents[2] / "shared" / "media"))
STILLS = {  # file → person
    "fr_biden.jpg": "biden",
    "fr_obama.jpg": "obama",
    "fr_obama2.jpg": "obama",
    "df_img3.jpg": "aniston",
    "df_img12.jpg": "aniston",
    "df_img13.jpg": "zuckerberg",
    "df_img15.jpg": "zuckerberg",
    "fr_lin-manuel-miranda.png": "miranda",
    "fr_alex-lacamoire.png": "lacamoire",
    "lp_driving_d19.jpg": "d18 man",
    "lp_driving_d9.jpg": "d9 woman",
    "lp_driving_d30.jpg": "d30 woman",
}
ACROSS_AGE = {frozenset(("df_img3.jpg", "df_img12.jpg")), frozenset(("df_img13.jpg", "df_img15.jpg"))}


def main() -> None:
    print(machine())
    t0 = time.perf_counter()
    desc = {name: reference_face(MEDIA / name).descriptor for name in STILLS}
    print(f"{len(desc)} stills analysed in {time.perf_counter() - t0:.1f} s\n")
    same, other = [], []
    for a, b in itertools.combinations(STILLS, 2):
        d = distance(desc[a], desc[b])
        (same if STILLS[a] == STILLS[b] else other).append((d, a, b))
    print("same person:")
    for d, a, b in sorted(same):
        tag = "  (across age)" if frozenset((a, b)) in ACROSS_AGE else ""
        print(f"  {d:.3f}  {a} ~ {b}{tag}")
    print(f"different people (closest 8 of {len(other)}):")
    for d, a, b in sorted(other)[:8]:
        print(f"  {d:.3f}  {a} ~ {b}")
    worst_same, best_other = max(same)[0], min(other)[0]
    t = SAME_PERSON_ACROSS_AGE
    print(f"\nSAME_PERSON = {SAME_PERSON}; SAME_PERSON_ACROSS_AGE = {t}")
    print(f"farthest same person {worst_same:.3f} (margin {t - worst_same:+.3f}); "
          f"closest different people {best_other:.3f} (margin {best_other - t:+.3f})")  # fmt: skip
    ok = worst_same < t <= best_other
    print("gate separates every pair" if ok else "GATE FAILS on this set")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
