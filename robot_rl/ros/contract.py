"""The topic contract: names (relative, one namespace per robot), message types and QoS, in one place.

Drivers (the real arm + cameras, or the MuJoCo bridge) publish DRIVER_TOPICS; tests compare what the running ROS
graph reports against this table.
"""
from __future__ import annotations

from dataclasses import dataclass

from geometry_msgs.msg import PoseStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, String, UInt8MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

SENSOR = qos_profile_sensor_data  # best effort, keep last 5, volatile
RELIABLE_10 = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
RELIABLE_LAST = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# Per-step records (rewards, executed actions): the last 100 stay with the writer, so a transient-local reader matched
# a moment after the episode started (discovery under load) still gets its first records, and a reader whose host is
# starved for a few seconds can still have them resent (a writer history of 10 lost them after 0.7 s at 15 Hz);
# readers filter by episode and stamp.
RECORDS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
LATCHED = QoSProfile(
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    history=HistoryPolicy.KEEP_LAST,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
LATCHED_10 = QoSProfile(
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    history=HistoryPolicy.KEEP_LAST,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
# Subscribers that must not lose a sample while their process is busy (the learner while it trains, the recorder):
# a deep reader history keeps minutes of 15 Hz streams until the executor takes them.
LOSSLESS = QoSProfile(depth=5000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# Per-step records for a reader that keeps every one (the recorder): RECORDS' late-joiner history, LOSSLESS' depth.
RECORDS_DEEP = QoSProfile(depth=5000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Camera frames for the learner: best effort like every image publisher, with a reader history as deep as LOSSLESS.
SENSOR_DEEP = QoSProfile(depth=5000, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)


@dataclass(frozen=True)
class Topic:
    name: str
    msg_type: type
    qos: QoSProfile


def camera_image(cam: str) -> Topic:
    return Topic(f"cameras/{cam}/image_raw", Image, SENSOR)


def camera_depth(cam: str) -> Topic:
    return Topic(f"cameras/{cam}/depth/image_raw", Image, SENSOR)


def camera_info(cam: str) -> Topic:
    return Topic(f"cameras/{cam}/camera_info", CameraInfo, LATCHED)


def camera_status(cam: str) -> Topic:
    """CameraStatus JSON record (robot_rl.ros.records): streaming / stale / resetting, counters."""
    return Topic(f"cameras/{cam}/status", String, LATCHED)


JOINT_STATES = Topic("joint_states", JointState, RELIABLE_10)
EE_POSE = Topic("ee_pose", PoseStamped, RELIABLE_10)
ACTION_CHUNK = Topic("action_chunk", JointTrajectory, RELIABLE_LAST)
EXECUTED_ACTION = Topic("executed_action", JointTrajectory, RECORDS)   # a per-step record, like REWARD
REWARD = Topic("reward", String, RECORDS)
EPISODE_STATUS = Topic("episode/status", String, LATCHED_10)
POLICY_WEIGHTS = Topic("policy/weights", UInt8MultiArray, LATCHED)
POLICY_VERSION = Topic("policy/version", String, LATCHED)
POLICY_ACTIVE = Topic("policy/active", String, LATCHED)  # the version the policy node runs, or why it refused one
ARM_STATUS = Topic("arm/status", String, LATCHED_10)
LEARNER_STATUS = Topic("learner/status", String, LATCHED)  # LearnerStatus JSON record
REWARD_STATUS = Topic("reward/status", String, LATCHED_10)  # RewardStatus: the last ten episodes' accounting
RECORDER_STATUS = Topic("recorder/status", String, LATCHED_10)  # RecorderStatus: the last ten episodes' accounting
TASK_STATE = Topic("sim/task_state", String, RELIABLE_10)  # sim only: privileged state, no hardware counterpart
CLOCK = Topic("/clock", Clock, CLOCK_QOS)
TELEOP_ACTIVE = Topic("teleop/active", Bool, LATCHED)  # True while a human has taken over: the policy node yields



@dataclass(frozen=True)
class Service:
    name: str
    srv_type: type


ARM_RESET = Service("arm/reset", Trigger)  # answer: JSON {seed, task, stamp}
ARM_STOP = Service("arm/stop", Trigger)  # e-stop
ARM_RECOVER = Service("arm/recover", Trigger)
ARM_ENABLE = Service("arm/enable", SetBool)
EPISODE_START = Service("episode/start", Trigger)
EPISODE_STOP = Service("episode/stop", Trigger)
EPISODE_MARK_SUCCESS = Service("episode/mark_success", Trigger)
EPISODE_MARK_FAILURE = Service("episode/mark_failure", Trigger)
LEARNER_SAVE = Service("learner/save", Trigger)
RECORDER_DISCARD = Service("recorder/discard", Trigger)  # drop the episode being recorded (re-record)

ARM_SERVICES = (ARM_RESET, ARM_STOP, ARM_RECOVER, ARM_ENABLE)
EPISODE_SERVICES = (EPISODE_START, EPISODE_STOP, EPISODE_MARK_SUCCESS, EPISODE_MARK_FAILURE)


# Every node makes its endpoints through these four, so names, types and QoS come from the table above only.
def publisher(node, topic: Topic):
    return node.create_publisher(topic.msg_type, topic.name, topic.qos)


def subscribe(node, topic: Topic, callback, qos: QoSProfile | None = None, raw: bool = False):
    """`qos` overrides the topic's own only where a reader needs a deeper history (LOSSLESS, SENSOR_DEEP)."""
    return node.create_subscription(topic.msg_type, topic.name, callback, qos or topic.qos, raw=raw)


def serve(node, service: Service, callback):
    return node.create_service(service.srv_type, service.name, callback)


def client(node, service: Service):
    return node.create_client(service.srv_type, service.name)


def driver_topics(cameras: list[str]) -> list[Topic]:
    """What an arm + camera driver (or the MuJoCo bridge) publishes."""
    topics = [JOINT_STATES, EE_POSE, EXECUTED_ACTION, ARM_STATUS]
    for cam in cameras:
        topics += [camera_image(cam), camera_info(cam)]
    return topics
