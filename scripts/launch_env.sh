#!/usr/bin/env bash
# The side venv for `ros2 launch` and colcon without a ROS installation (test/graph/test_ros2_launch.py, README):
# the vendored launch / launch_ros / ros2cli sources (../shared/vendor/ros2-launch, which have no wheels) and colcon
# from PyPI, on top of .venv's packages (the ROS wheels and robot_rl's stack) through a .pth file, so nothing is
# installed twice and .venv stays as it is. Safe to run again: a stamp file skips pip while the vendored sources,
# .venv's location and this script are unchanged.
#   bash scripts/launch_env.sh    ->  .venv-launch/bin/colcon, .venv-launch/bin/ros2
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
LAUNCH_VENV=${LAUNCH_VENV:-.venv-launch}
VENDOR=${ROS2_LAUNCH_VENDOR:-../shared/vendor/ros2-launch}
COLCON=(colcon-core==0.21.3 colcon-ros==0.5.0 colcon-bash==0.5.0)

[ -x "$VENV/bin/python" ] || { echo "[launch_env] $VENV missing: run scripts/install.sh first" >&2; exit 1; }
[ -f "$VENDOR/install.sh" ] || { echo "[launch_env] $VENDOR/install.sh not found (the vendored ROS 2 launch stack)" >&2; exit 1; }
venv_dir=$(cd "$VENV" && pwd)
venv_site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
stamp="$LAUNCH_VENV/.launch-env-$( { cat "$0" "$VENDOR/install.sh"; echo "$venv_site ${COLCON[*]}";
  find "$VENDOR" -name package.xml | sort | xargs cat; } | sha256sum | cut -c1-16)"
[ -f "$stamp" ] && exit 0

echo "[launch_env] $LAUNCH_VENV: ros2 launch stack + colcon on top of $VENV (first time: about a minute)"
rm -rf "$LAUNCH_VENV"
"$VENV/bin/python" -m venv "$LAUNCH_VENV"
launch_site=$("$LAUNCH_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
# .venv's packages after the side venv's own; the ROS wheels' shared libraries live in .venv (its bootstrap looks
# for them under the running interpreter's prefix, which here is the side venv), so they go on LD_LIBRARY_PATH first.
cat > "$launch_site/robot_rl_main_venv.pth" <<EOF
import glob, os, site; os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(["$venv_dir/lib", *sorted(glob.glob("$venv_site/ros_*.libs")), *filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep))]); site.addsitedir("$venv_site")
EOF
# composition_interfaces has no wheel; launch_ros imports it for composable nodes only, which robot_rl does not use.
mkdir -p "$launch_site/composition_interfaces"
echo '"""Stand-in (no wheel on PyPI): launch_ros imports it for composable nodes, which robot_rl does not use."""' \
  > "$launch_site/composition_interfaces/__init__.py"
cat > "$launch_site/composition_interfaces/srv.py" <<'EOF'
class LoadNode:
    """Only named by launch_ros's type hints; loading a composable node needs the real message package."""

    class Request:
        def __init__(self, *_args, **_kwargs):
            raise RuntimeError("composable nodes need the real composition_interfaces package")
EOF
log="$LAUNCH_VENV/install.log"
if ! { bash "$VENDOR/install.sh" "$LAUNCH_VENV" && "$LAUNCH_VENV/bin/pip" install --progress-bar off -q "${COLCON[@]}"; } \
    >"$log" 2>&1; then
  cat "$log" >&2
  echo "[launch_env] installing into $LAUNCH_VENV failed (log above)" >&2
  exit 1
fi
"$LAUNCH_VENV/bin/python" -c "import launch_ros.actions, ros2cli, colcon_core, colcon_ros, rclpy"
touch "$stamp"
