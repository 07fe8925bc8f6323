# Environment for running robot_rl processes locally and in CI (sourced by the Makefile targets).
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}   # no DDS traffic off this host
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$((RANDOM % 100 + 1))}                       # isolation between concurrent runs
export ROS_LOG_DIR=${ROS_LOG_DIR:-${TMPDIR:-/tmp}/robot_rl_ros_log}
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$PWD/config/fastdds.xml}
export MUJOCO_GL=${MUJOCO_GL:-egl}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONUNBUFFERED=1
