"""Fault matrix on the sim graph (real processes, real DDS): a node that dies or stalls mid-episode, a camera that
stops or sends malformed frames, a second graph on another ROS domain, a teleop device that disconnects, and the
sockets the nodes open. Numbers each test measures are printed (pytest -s) and quoted in docs/reliability.md.

The module graph is bridge (lockstep, no cameras) + scripted policy + sim reward + episode manager; episodes are
started and paused by the tests through the episode services, and a test that kills a node restarts it."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from policy_fixtures import tiny_sim_policy
from fault_harness import (Watch, kill9, listening_tcp, other_domain, sockets_besides_dds, wait_graph,
                           wait_quiet)
from robot_rl import bringup
from robot_rl.core.types import CONTROL_HZ, JOINT_SPACE_NAMES
from robot_rl.policies import save_policy
from robot_rl.nodes.teleop import TeleopNode
from robot_rl.ros import contract, convert, records
from robot_rl.teleop import TeleopInput
from robot_rl.ros.probe import Probe, wait_for
from node_harness import NodeInThread

pytestmark = pytest.mark.graph
NS = "/fault_graph"
PERIOD = 1 / CONTROL_HZ
MAX_STEPS = 100_000  # no timeouts: the lockstep sim runs ~15x real time here; tests end episodes
# config/sim.yaml as it is otherwise: lockstep (the bridge waits up to 2 s for each chunk), reward_timeout_s 2 s
SIM_GRAPH = ["mujoco_bridge.camera_hz=0.0", "episode_manager.autostart=false", "episode_manager.num_episodes=0",
             "episode_manager.exit_when_done=false", f"episode_manager.max_steps={MAX_STEPS}",
             "episode_manager.terminate_on_success=false"]


@pytest.fixture(scope="module")
def graph():
    proc = bringup.start_graph(bringup.PACKAGE_ROOT / "config" / "graphs" / "sim_scripted.yaml", NS, SIM_GRAPH)
    probe = Probe("fault_graph_probe")
    watch = Watch(probe, NS)
    try:
        wait_for(lambda: watch.status and watch.joints and watch.arm, 90, "the graph to come up")
        yield proc, watch
    finally:
        probe.close()
        proc.stop()


def running_with_actions(proc, watch: Watch, n: int = 10) -> records.EpisodeStatus:
    """Start an episode and wait until the arm has executed `n` policy actions and got a reward record in it."""
    watch.pause()  # whatever an earlier test left running
    episode = watch.start_episode()
    wait_graph(proc, lambda: len(watch.executed_in(episode, "policy")) >= n, 60, f"{n} executed policy actions")
    wait_graph(proc, lambda: any(r.episode == episode.episode for r in watch.rewards), 30, "reward records")
    return episode


def test_nodes_open_no_socket_besides_dds(graph):
    """No TCP at all (Fast DDS runs UDPv4 + SHM here), and every UDP socket is one Fast DDS opens."""
    proc, _ = graph
    domain = int(os.environ["ROS_DOMAIN_ID"])
    for name, p in proc.procs.items():
        assert listening_tcp(p.pid) == [], name
        assert sockets_besides_dds(p.pid, domain) == [], name


def test_sim_clock_stall_neither_acts_nor_ends_the_episode(graph):
    """The bridge (the sim clock) frozen for 3 s mid-episode: no chunk is computed for a time that did not come, no
    wall-clock rule (the reward timeout) ends the episode, and control resumes where it stopped."""
    proc, watch = graph
    episode = running_with_actions(proc, watch)
    bridge = proc.procs["mujoco_bridge"].pid
    os.kill(bridge, signal.SIGSTOP)
    try:
        wait_quiet(0.5)  # samples already in flight arrive
        frozen_at, chunks_before = watch.now(), len(watch.chunks)
        wait_quiet(3.0)
        during = watch.chunks[chunks_before:]
        ended_during = watch.last_status(episode.episode, "ended")
        stopped_at = watch.now()
    finally:
        os.kill(bridge, signal.SIGCONT)
    # frozen_at is the newest joint_states the probe had: the bridge's last sample before the stop may have reached
    # the policy but not yet the probe (its resend waits on the stopped writer; on a busy machine past the 0.5 s
    # wait), so one tick of slack, for the probe's clock as for the chunks. A clock that ran on, or a chunk for a time
    # that did not come, would be seconds ahead (the stall is 3 s, 45 ticks).
    assert frozen_at <= stopped_at <= frozen_at + 1.0 / CONTROL_HZ + 1e-9, (frozen_at, stopped_at)
    assert all(c.stamp <= frozen_at + 1.0 / CONTROL_HZ + 1e-9 for c in during), (frozen_at, [c.stamp for c in during])
    assert ended_during is None, ended_during
    wait_graph(proc, lambda: [c for c in watch.executed_in(episode, "policy") if c.stamp > frozen_at + 1.0],
               30, "policy actions after the stall")
    watch.pause()
    end = watch.last_status(episode.episode, "ended")
    print(f"\nclock stall: 3 s frozen at t={frozen_at:.3f}, {len(during)} chunk(s) meanwhile; control resumed; "
          f"episode {end.outcome} by the operator after {end.steps} steps")
    assert end.outcome == "stopped", end


def test_estop_mid_episode_ends_it_interrupted_and_recover_lets_the_next_run(graph):
    proc, watch = graph
    episode = running_with_actions(proc, watch)
    assert watch.call("arm/stop").success
    end = watch.wait_end(episode.episode, 30)
    assert end.outcome == "interrupted" and "estop" in end.reason, end
    assert watch.call("arm/recover").success
    running_with_actions(proc, watch)  # the next episode starts and acts
    watch.pause()


def test_reward_node_killed_mid_episode_ends_it_interrupted(graph):
    proc, watch = graph
    episode = running_with_actions(proc, watch)
    kill9(proc, "reward")
    killed_wall, killed_at = time.monotonic(), watch.now()
    try:
        end = watch.wait_end(episode.episode, 60)
        detect_wall = time.monotonic() - killed_wall
    finally:
        watch.restart(proc, "reward", contract.REWARD)
    # episodes go on starting; once the restarted node is matched, they get reward records again
    wait_graph(proc, lambda: any(r.episode > episode.episode for r in watch.rewards), 60, "rewards after the restart")
    watch.pause()
    print(f"\nreward node killed at t={killed_at:.3f}: episode {end.outcome} at t={episode.stamp + end.duration_s:.3f} "
          f"({detect_wall:.1f} s wall later): {end.reason}; restarted, rewards again")
    assert end.outcome == "interrupted" and "reward" in end.reason, end


def test_policy_node_killed_arm_holds_from_the_next_tick_and_episode_is_interrupted(graph):
    proc, watch = graph
    episode = running_with_actions(proc, watch)
    kill9(proc, "policy")
    killed_at, killed_wall = watch.clock_now, time.monotonic()  # not the newest joint state: that can lag under load
    try:
        end = watch.wait_end(episode.episode, 90)
        detect_wall = time.monotonic() - killed_wall
    finally:
        watch.restart(proc, "policy", contract.ACTION_CHUNK)
    # the next episode, started meanwhile, holds until the restarted policy's first chunk, then runs
    wait_graph(proc, lambda: any(c.source == "policy" and c.stamp > end.stamp for c in watch.executed), 60,
               "policy actions after the restart")
    watch.pause()
    end_time = episode.stamp + end.duration_s
    ticks = [c for c in watch.executed_in(episode) if c.stamp <= end_time + 1e-6]
    last_policy = max(i for i, c in enumerate(ticks) if c.source == "policy")
    after = ticks[last_policy + 1:]
    assert after, "no control tick after the last policy point"
    # the very next tick holds, and every tick after it
    assert after[0].stamp - ticks[last_policy].stamp == pytest.approx(PERIOD, abs=3e-3)
    assert all(c.source == "hold" for c in after), [c.source for c in after]
    assert all(np.all(c.points[0, :6] == 0.0) for c in after)  # EE hold: a zero delta, the target stays frozen
    # the last chunk the policy sent before it died; judged by its own stamps, not by when the probe saw the kill
    # (the probe's clock lags a busy graph by several ticks)
    last_chunk = max((c for c in watch.chunks if c.stamp <= end_time), key=lambda c: c.stamp)
    chunk_end = last_chunk.stamp + (len(last_chunk.points) - 1) * last_chunk.dt
    tail = sum(c.stamp >= last_chunk.stamp - PERIOD / 2 for c in ticks[:last_policy + 1])
    hold_from = after[0].stamp
    held = [np.array(p) for t, p in watch.poses if hold_from <= t <= end_time]  # then the next episode resets it
    drift = max(np.linalg.norm(p - held[0]) for p in held)  # the arm settling onto its frozen target
    print(f"\npolicy killed at t={killed_at:.3f} (the probe's clock): {tail} point(s) of its last chunk (t="
          f"{last_chunk.stamp:.3f}) executed, then hold from "
          f"the next tick (t={hold_from:.3f}); TCP motion while holding {drift * 1e3:.2f} mm; episode {end.outcome} "
          f"at t={end_time:.3f} ({detect_wall:.1f} s wall after the kill): {end.reason}; restarted, acting again")
    # no policy point past the end of the last chunk it sent: the arm ran out what was validated, then held
    assert ticks[last_policy].stamp <= chunk_end + PERIOD / 2, (ticks[last_policy].stamp, chunk_end)
    assert drift < 0.01  # settling onto the frozen target: at most the tracking lag, under one 1 cm EE step
    assert end.outcome == "interrupted" and "watchdog" in end.reason, end


def test_graph_on_another_domain_sees_none_of_this_one(graph, tmp_path):
    """A second bridge with the same namespace on another ROS_DOMAIN_ID: each domain sees one bridge, its own (the
    arm/reset answer names its task), and this domain's episode does not enable the other's arm."""
    proc, watch = graph
    domain = other_domain()
    gfile = tmp_path / "bridge.yaml"
    gfile.write_text("name: other\nparams_files: [config/sim.yaml]\nnodes: [{executable: mujoco_bridge}]\n")
    other = bringup.start_graph(gfile, NS, ["mujoco_bridge.task=push", "mujoco_bridge.camera_hz=0.0"],
                        env=dict(os.environ, ROS_DOMAIN_ID=str(domain)))
    probe = Probe("other_domain_probe", domain_id=domain)
    other_watch = Watch(probe, NS)
    try:
        wait_for(lambda: other_watch.arm and other_watch.joints, 90, "the other domain's bridge")
        episode = running_with_actions(proc, watch, 5)
        for w, task in ((watch, "reach"), (other_watch, "push")):
            names = w.probe.node.get_node_names_and_namespaces()
            assert names.count(("mujoco_bridge", NS)) == 1, names
            assert w.probe.node.count_publishers(w.topic(contract.JOINT_STATES)) == 1
        assert ("policy", NS) not in probe.node.get_node_names_and_namespaces()
        assert '"task": "push"' in probe.call(Trigger, f"{NS}/arm/reset", Trigger.Request()).message
        assert {a.state for a in other_watch.arm} == {"disabled"}  # this domain's episode enabled only its own arm
        assert other_watch.executed == [] and other_watch.rewards == [] and other_watch.status == []
        assert episode.task == "reach"
    finally:
        probe.close()
        other.stop()
        watch.pause()


# ---- a camera that stops, or sends malformed frames -----------------------------------------------------------------
def camera_policy(path):
    save_policy(tiny_sim_policy(0, environment_state=False, cameras=("front",), hidden_dim=16, depth=1, flow_steps=2,
                                step_m=0.005, step_rad=0.02), path, version=0)


def malformed_image(kind: str, stamp: float) -> Image:
    """A freshly stamped frame of one malformed kind (MALFORMED: kind -> the reason the node must log)."""
    msg = convert.image_to_msg(np.zeros((16, 16, 3), np.uint8), stamp, "front_optical_frame")
    if kind == "encoding":
        msg.encoding = "32FC1"
    elif kind == "oversized":  # the header claims 10^10 pixels
        msg.height = msg.width = 100_000
        msg.step = 300_000
    else:
        msg.data = bytes(100)
    return msg


MALFORMED = {"encoding": "image encoding '32FC1', expected rgb8 or bgr8",
             "oversized": "image size 100000x100000 outside 1..",
             "truncated": "image data has 100 bytes, header says 768"}


def test_camera_stream_that_stops_or_turns_malformed_never_feeds_the_policy(tmp_path):
    """The camera's good frames stop mid-episode; only malformed ones (wrong encoding, oversized, truncated) keep
    coming. Each malformed frame is rejected with its reason, no chunk is planned from a stale frame, the arm holds
    and the episode ends as interrupted. (On its own ROS domain: the module's graph publishes /clock too.)"""
    camera_policy(tmp_path / "policy")
    ns, domain = "/fault_camera", other_domain()
    proc = bringup.start_graph(bringup.PACKAGE_ROOT / "config" / "graphs" / "sim_eval.yaml", ns, [
        "mujoco_bridge.task=reach", "mujoco_bridge.camera_hz=0.0", "mujoco_bridge.camera_names=[front]", f"policy.checkpoint={tmp_path / 'policy'}",
        "episode_manager.num_episodes=1", "episode_manager.max_steps=600", "episode_manager.terminate_on_success=false"],
        env=dict(os.environ, ROS_DOMAIN_ID=str(domain)))
    probe = Probe("camera_fault_probe", domain_id=domain)
    watch = Watch(probe, ns)
    pub = probe.node.create_publisher(Image, f"{ns}/{contract.camera_image('front').name}", contract.SENSOR)
    good: list[float] = []
    mode = {"frames": "good"}
    rng = np.random.default_rng(0)

    def logged(kind: str) -> bool:
        return any(f"image rejected: {MALFORMED[kind]}" in line for line in proc.logs["policy"])

    def camera(msg: JointState) -> None:  # one frame per robot tick, stamped with the tick, like the bridge's cameras
        stamp = convert.from_time(msg.header.stamp)
        if mode["frames"] == "good":
            pub.publish(convert.image_to_msg(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), stamp, "front"))
            good.append(stamp)
        else:  # one kind until the node has logged its reason (the log is throttled to 1/s), then the next
            pub.publish(malformed_image(next((k for k in MALFORMED if not logged(k)), "truncated"), stamp))

    probe.node.create_subscription(JointState, f"{ns}/{contract.JOINT_STATES.name}", camera, contract.JOINT_STATES.qos)
    try:
        episode = wait_graph(proc, lambda: watch.last_status(state="running"), 120, "the episode to run")
        wait_graph(proc, lambda: len(watch.executed_in(episode, "policy")) >= 15, 90, "15 executed policy actions")
        mode["frames"] = "malformed"
        end = watch.wait_end(episode.episode, 90)
        wait_for(lambda: all(logged(k) for k in MALFORMED), 60, "every malformed kind rejected with its reason")
    finally:
        probe.close()
        proc.stop()
    max_age = 2 * PERIOD + 1e-6  # policy stale_periods 2
    last_good = good[-1]  # read after the run: the probe's thread may publish one more good frame after the switch
    stale = [c.stamp for c in watch.chunks if not any(c.stamp - max_age <= s <= c.stamp + 1e-9 for s in good)]
    assert stale == [], f"chunks planned without a fresh good frame: {stale}"
    assert max(c.stamp for c in watch.chunks) <= last_good + max_age
    print(f"\ncamera: last good frame t={last_good:.3f}, last chunk t={max(c.stamp for c in watch.chunks):.3f}; "
          f"episode {end.outcome} at t={episode.stamp + end.duration_s:.3f}: {end.reason}")
    assert end.outcome == "interrupted" and "watchdog" in end.reason, end


# ---- a teleop device unplugged while the human drives -------------------------------------------------------------
class UnpluggableDevice:
    """Full +x deflection and, when the test asks, a take-over press, until unplugged: then it raises like pygame
    (RuntimeError) or hidapi (OSError) do for a device that is gone."""

    name = "gamepad"

    def __init__(self):
        self.error: Exception | None = None
        self.press_takeover = False

    def poll(self) -> TeleopInput:
        if self.error is not None:
            raise self.error
        events = ["takeover"] if self.press_takeover else []
        self.press_takeover = False
        return TeleopInput(twist=np.r_[1.0, 0, 0, 0, 0, 0], events=events)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("error", [RuntimeError("Joystick not initialized"), OSError(19, "No such device")],
                         ids=["pygame", "hidapi"])
def test_teleop_device_unplugged_mid_takeover_holds_the_arm(capfd, error):
    device = UnpluggableDevice()
    probe = Probe("teleop_fault_probe")
    chunks = []
    probe.node.create_subscription(JointTrajectory, contract.ACTION_CHUNK.name,
                                   lambda m: chunks.append(convert.msg_to_chunk(m)), contract.ACTION_CHUNK.qos)
    pub_status = probe.node.create_publisher(String, contract.EPISODE_STATUS.name, contract.EPISODE_STATUS.qos)
    pub_joints = probe.node.create_publisher(JointState, contract.JOINT_STATES.name, contract.JOINT_STATES.qos)
    teleop = NodeInThread(TeleopNode, {"control_hz": 10.0}, lambda cfg: ([device], []))
    clock = [1.0]

    def tick() -> None:
        pub_joints.publish(convert.joint_state_msg(JOINT_SPACE_NAMES, [0.0] * 7 + [0.04], [0.0] * 8, clock[0]))
        clock[0] += 0.1

    try:
        wait_for(lambda: teleop.node.count_subscribers(contract.JOINT_STATES.name) or None, 10, "discovery")
        pub_status.publish(String(data=records.encode(records.EpisodeStatus(stamp=1.0, episode=0, state="running"))))
        wait_for(lambda: teleop.node.running_episode is not None, 10, "the running episode")
        device.press_takeover = True   # take-over needs a running episode
        wait_for(lambda: (tick(), chunks)[1], 10, "a teleop chunk", interval=0.1)
        assert chunks[-1].source == "teleop" and chunks[-1].points[0, 0] == pytest.approx(0.01)
        device.error = error
        wait_for(lambda: "its input counts as zero" in capfd.readouterr().err, 10, "the device error logged")
        n = len(chunks)
        wait_for(lambda: (tick(), len(chunks) >= n + 3)[1], 10, "teleop chunks after the unplug", interval=0.1)
        after = np.stack([c.points[0] for c in chunks[n + 1:]])
        assert np.all(after[:, :6] == 0.0), after  # zero deltas: the arm holds, nothing repeats the last deflection
        assert np.all(after[:, 6] == pytest.approx(0.04))  # the gripper keeps its width
    finally:
        teleop.close()
        probe.close()
