#!/usr/bin/env bash
# Start franky-sim (a MuJoCo FR3 that speaks the libfranka protocol) on a free loopback address; Ctrl+C stops it.
# It prints the address; run the arm node against it from another shell, e.g.
#   python -m robot_rl.bringup <graph with the arm node> --set arm.robot.host=127.0.X.Y --set arm.robot.realtime=ignore
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-franka-sim/bin/franky-sim ] || bash scripts/install.sh
exec .venv/bin/python -m robot_rl.hardware.franky_sim
