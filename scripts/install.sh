#!/usr/bin/env bash
# Installs what is missing, and nothing else: Debian packages (only when absent), the venv, the pinned Python stack,
# and robot_rl itself (editable); with --franky-sim also the franky-sim venv the arm node's tests drive (make test,
# not make demo). Safe to run again; stamp files skip pip when requirements are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
APT_PACKAGES=(libusb-1.0-0 libegl1 libegl-mesa0 libgl1 libgles2)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "[install] apt: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    echo "[install] apt (sudo): ${missing[*]}"
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "[install] missing Debian packages: ${missing[*]}" >&2
    echo "[install] run as root:  apt-get install -y ${missing[*]}   (libusb for RealSense, EGL/GL for MuJoCo rendering)" >&2
    exit 1
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[install] creating $VENV"
  python3 -m venv "$VENV"
fi
stamp="$VENV/.robot_rl-installed-$(cat requirements.txt setup.py robot_rl/nodes/__init__.py | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[install] pip install -r requirements.txt (first time: about a minute)"
  "$VENV/bin/pip" install --progress-bar off -q -r requirements.txt
  "$VENV/bin/pip" install --progress-bar off -q --no-deps --no-build-isolation -e .
  "$VENV/bin/python" -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else f'torch {v} was installed, expected 2.13.0')"
  rm -f "$VENV"/.robot_rl-installed-*
  touch "$stamp"
fi

# franky-sim, the libfranka-protocol MuJoCo FR3 that the arm node's tests drive, in its own venv (it pins
# numpy/mujoco/pinocchio apart from the main stack). Rebuilt only when its pinned requirements change.
[ "${1:-}" = "--franky-sim" ] || exit 0
SIM_VENV=${SIM_VENV:-.venv-franka-sim}
sim_stamp="$SIM_VENV/.franky-sim-$(sha256sum < scripts/franky_sim_requirements.txt | cut -c1-16)"
if [ ! -f "$sim_stamp" ]; then
  echo "[install] $SIM_VENV: franky-sim for the arm node tests (first time: about a minute)"
  [ -x "$SIM_VENV/bin/python" ] || python3 -m venv "$SIM_VENV"
  "$SIM_VENV/bin/pip" install --progress-bar off -q -r scripts/franky_sim_requirements.txt
  rm -f "$SIM_VENV"/.franky-sim-*
  touch "$sim_stamp"
fi
