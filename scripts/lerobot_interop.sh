#!/usr/bin/env bash
# `make interop`: robot_rl's datasets against LeRobot 0.6.1, both ways (scripts/lerobot_interop.py says what is
# checked). LeRobot lives in a side venv, .venv-lerobot, built once (rebuilt when its pins change): torch 2.13.0 CPU
# from the local wheel first, then lerobot and the packages its dataset code imports, pinned, with --no-deps (its own
# pins want torch<2.12 and Python>=3.12), then the 3.11 backport (see `backport` in the .py). No CUDA wheel is
# fetched. Extra arguments: robot_rl dataset roots to check too (copies are used), e.g. one the ROS recorder wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
SIDE=${LEROBOT_VENV:-.venv-lerobot}
OUT=${INTEROP_DIR:-runs/lerobot_interop}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MUJOCO_GL=${MUJOCO_GL:-egl}   # sim collection renders headless

stamp="$SIDE/.lerobot-interop-$(cat scripts/lerobot_interop_requirements.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[interop] building $SIDE (first time: a few minutes)"
  [ -x "$SIDE/bin/python" ] || python3 -m venv "$SIDE"
  "$SIDE/bin/pip" install --progress-bar off -q torch==2.13.0
  "$SIDE/bin/pip" install --progress-bar off -q --no-deps --ignore-requires-python \
    -r scripts/lerobot_interop_requirements.txt
  "$SIDE/bin/python" -c "import sys, torch; sys.exit(0 if torch.__version__.startswith('2.13.0') else torch.__version__)"
  "$SIDE/bin/python" scripts/lerobot_interop.py backport "$("$SIDE/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  rm -f "$SIDE"/.lerobot-interop-*
  touch "$stamp"
fi

# LeRobot and the datasets library stay offline, with their caches under $OUT
rm -rf "$OUT/hf_home"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME="$PWD/$OUT/hf_home" SVT_LOG=1
"$VENV/bin/python" scripts/lerobot_interop.py write "$OUT/datasets" "$@"
"$SIDE/bin/python" -W ignore scripts/lerobot_interop.py lerobot "$OUT/datasets"
"$VENV/bin/python" scripts/lerobot_interop.py read "$OUT/datasets"
"$SIDE/bin/python" -W ignore scripts/lerobot_interop.py reload "$OUT/datasets"
