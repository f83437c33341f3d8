#!/usr/bin/env bash
# Installs faceplate into ./.venv on a fresh machine (Python 3.11). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip --disable-pip-version-check --no-input"
# 1. torch first: a CPU wheel of 2.13.0 lies on these machines; plain 'torch' would pull a CUDA build.
$PIP install -q "torch==2.13.0"
# 2. mediapipe without its declared jax/jaxlib (the bundled TFLite graphs do not use them).
$PIP install -q --no-deps "mediapipe==0.10.21"
# 3. everything else, pinned.
$PIP install -q -r requirements.txt
# 4. the package itself (its requirements are all satisfied by now).
$PIP install -q --no-deps --no-build-isolation -e .
# pip check must be clean apart from mediapipe's jax/jaxlib, which are left out on purpose.
problems=$(.venv/bin/python -m pip check 2>&1 \
  | grep -v -E "^mediapipe 0\.10\.21 requires jax(lib)?, which is not installed\.$" | grep -v "^No broken" || true)
if [ -n "$problems" ]; then echo "$problems"; echo "install.sh: pip check found broken dependencies (above)"; exit 1; fi
echo "faceplate installed in .venv ($(.venv/bin/faceplate --version))"
# 5. the main job on the example plate that ships in the repo (skip with FACEPLATE_NO_EXAMPLE=1).
if [ -z "${FACEPLATE_NO_EXAMPLE:-}" ]; then
  echo "example: beauty fix of examples/d18.mp4 (216 frames, 480x480) ..."
  .venv/bin/faceplate beauty examples/d18.mp4 -o out/example/d18_beauty.mp4 --matte out/example/d18_matte.mp4 \
    --delta "out/example/d18_delta.####.exr" --overwrite
  echo "example results: out/example/d18_beauty.mp4 (comp), out/example/d18_matte.mp4 (matte)," \
    "out/example/d18_delta.####.exr (comp - plate), out/example/d18.faceplate/ (the shot folder)"
fi
