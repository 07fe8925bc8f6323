"""Learner node: POCO online fine-tuning from the live graph.

It assembles transitions from `joint_states` + `ee_pose` (state; + `task_state` for sim policies that use the
object pose; + the policy's camera images for camera policies, at the same stamps), `executed_action` (what was
really commanded, human interventions included: their stretches are also kept as demonstrations), `reward` records
and `episode/status`; keeps every episode in its replay store (offline demonstrations included) and persists each
one to disk, so a restarted learner resumes without losing transitions; after each episode it runs one update per new
env step (UTD 1) in a worker thread, then publishes the new weights (safetensors bytes + a `policy/version` record
with their sha256) and a `learner/status` record. A failed or non-finite update is reported there and the last good
weights stay in service. The node can run on another host than the robot: only these topics cross
(docs/architecture.md).
"""
from __future__ import annotations

import json
import queue
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from geometry_msgs.msg import PoseStamped
from pydantic import BaseModel, Field
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String, UInt8MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_rl.core.stamps import stamp_key
from robot_rl.core.state import environment_vector, state_vector
from robot_rl.policies import load_policy, policy_from_bytes, policy_to_bytes, save_policy, sha256_hex
from robot_rl.policies.encoders import resize_frames
from robot_rl.rl.assembler import EpisodeAssembler
from robot_rl.rl.offline import offline_episodes
from robot_rl.rl.poco import POCOConfig, POCOLearner
from robot_rl.rl.replay import Episode, ReplayStore, intervention_segments, load_episodes, save_episode
from robot_rl.ros import contract, convert, records
from robot_rl.ros.node_runtime import declare_config, decode_or_log, run_node

CRITIC_FILE = "critic.safetensors"
STATE_FILE = "learner_state.json"  # how many persisted online episodes the checkpoint has been trained on


@dataclass
class Work:
    """The updates owed to one ended episode; `steps` 0 (nothing stored) re-issues the last good weights."""
    episode: int | None  # None: a persisted episode the learner had not trained on before it was restarted
    outcome: str
    steps: int
    intervention_rate: float


class LearnerConfig(BaseModel, extra="forbid"):
    checkpoint: str = Field("", description="directory of the pretrained policy (policy.safetensors + config.json)")
    dataset: str = Field("", description="LeRobot v3 dataset root of the offline demonstrations")
    output_dir: str = "runs/learner"
    control_hz: float = Field(15.0, gt=0)
    seed: int = 0
    poco: POCOConfig = POCOConfig()


CONFIG = LearnerConfig


class LearnerNode(Node):
    def __init__(self):
        super().__init__("learner")
        self.cfg = declare_config(self, LearnerConfig)
        cfg = self.cfg
        self.out = Path(cfg.output_dir)
        self.replay_dir = self.out / "replay"
        self.state_dir = self.out / "checkpoint"  # the newest actor + critic, rewritten after every episode's updates
        resuming = (self.state_dir / CRITIC_FILE).exists()
        policy, self.version = load_policy(self.state_dir if resuming else Path(cfg.checkpoint))
        torch.manual_seed(cfg.seed)
        self.learner = POCOLearner(policy, cfg.poco, cfg.seed)
        if resuming:
            self.learner.load_critic_tensors(load_file(self.state_dir / CRITIC_FILE))
        self.lock = threading.Lock()  # the worker updates the actor while the ROS thread may save it
        self.store = ReplayStore(policy.spec.horizon, cfg.poco.gamma)
        if cfg.dataset:
            for episode in offline_episodes(cfg.dataset, policy, cfg.poco.step_penalty):
                self.store.add(episode)
        resumed = load_episodes(self.replay_dir) if self.replay_dir.exists() else []
        for episode in resumed:
            self.add_to_store(episode)
        self.online_episodes = len(resumed)
        self.trained_episodes = self._trained_episodes(len(resumed)) if resuming else 0
        self.work: queue.Queue = queue.Queue()
        for episode in resumed[self.trained_episodes:]:  # persisted, but the learner died before training on them
            self.work.put(Work(None, "resumed", len(episode.actions), float(episode.interventions.mean())))
        self.rng = np.random.default_rng(cfg.seed)
        self.critic_warmup = 0 if resuming or not len(self.store) else cfg.poco.critic_pretrain_updates
        self.assembler = EpisodeAssembler(1.0 / cfg.control_hz)
        # observation parts waiting for their partners with the same stamp: pose, joints (+ sim environment state)
        # (+ one image per policy camera)
        self.cameras = list(policy.spec.cameras)
        self.parts = (("pose", "joints") + (("environment",) if policy.spec.environment_state else ())
                      + tuple(f"camera/{cam}" for cam in self.cameras))
        self.pending: dict[str, dict[int, object]] = {part: {} for part in self.parts}
        self.parts_received: set[str] = set()
        self.episode: int | None = None
        self.start_stamp = 0.0
        self.results: queue.Queue = queue.Queue()  # (state, weights to publish or None, log row or message)
        self.state, self.message, self.last_row = "warming_up", "", {}
        self.last_blob = policy_to_bytes(policy, self.version)  # the newest good weights, served after a failure

        self.pub_weights = self.create_publisher(UInt8MultiArray, contract.POLICY_WEIGHTS.name,
                                                 contract.POLICY_WEIGHTS.qos)
        self.pub_version = self.create_publisher(String, contract.POLICY_VERSION.name, contract.POLICY_VERSION.qos)
        self.pub_status = self.create_publisher(String, contract.LEARNER_STATUS.name, contract.LEARNER_STATUS.qos)
        self.create_subscription(JointState, contract.JOINT_STATES.name, self.on_joints, contract.LOSSLESS)
        self.create_subscription(PoseStamped, contract.EE_POSE.name, self.on_pose, contract.LOSSLESS)
        self.create_subscription(JointTrajectory, contract.EXECUTED_ACTION.name, self.on_executed,
                                 contract.LOSSLESS)
        self.create_subscription(String, contract.REWARD.name, self.on_reward, contract.LOSSLESS)
        self.create_subscription(String, contract.EPISODE_STATUS.name, self.on_status, contract.EPISODE_STATUS.qos)
        if policy.spec.environment_state:
            self.create_subscription(String, contract.TASK_STATE.name, self.on_task_state, contract.LOSSLESS)
        for cam in self.cameras:
            self.create_subscription(Image, contract.camera_image(cam).name,
                                     lambda msg, cam=cam: self.on_image(cam, msg), contract.SENSOR_DEEP)
        self.create_service(Trigger, "learner/save", self.on_save)
        self.create_timer(0.05, self.drain_results)
        threading.Thread(target=self.worker, daemon=True).start()
        # announce the weights (which lets the episode manager start) only once the streams the learner records are
        # discovered: an episode that began before would reach the learner without its first states, or not at all
        self.announce_timer = self.create_timer(0.1, self.announce_when_connected)
        self.publish_status()
        self.get_logger().info(f"learner up: {len(self.store)} steps in the store ({len(resumed)} online episodes "
                               f"resumed), policy version {self.version} "
                               f"({'resumed from ' + str(self.state_dir) if resuming else cfg.checkpoint}), "
                               f"{self.learner.updates} updates so far, mode {cfg.poco.mode}")

    # ---- streams -----------------------------------------------------------------------------------------------
    def on_joints(self, msg: JointState) -> None:
        self._merge(convert.from_time(msg.header.stamp), "joints", np.asarray(msg.position))

    def on_pose(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        self._merge(convert.from_time(msg.header.stamp), "pose", ((p.x, p.y, p.z), (q.w, q.x, q.y, q.z)))

    def on_task_state(self, msg: String) -> None:
        try:
            rec = records.decode(msg.data, records.TaskState)
            self._merge(rec.stamp, "environment", environment_vector(rec.state))
        except (records.RecordError, KeyError, ValueError) as err:
            self.get_logger().error(f"ignored task state: {err}", throttle_duration_sec=1.0)

    def on_image(self, cam: str, msg: Image) -> None:
        try:
            frame = convert.msg_to_image(msg)
        except convert.ConversionError as err:
            self.get_logger().error(f"ignored {cam} image: {err}", throttle_duration_sec=1.0)
            return
        frame = resize_frames(frame[None], self.learner.policy.spec.image_size)[0]  # stored at the policy's size
        self._merge(convert.from_time(msg.header.stamp), f"camera/{cam}", frame)

    def _merge(self, stamp: float, part: str, value) -> None:
        self.parts_received.add(part)
        key = stamp_key(stamp)
        self.pending[part][key] = value
        if all(key in self.pending[p] for p in self.parts):
            values = {p: self.pending[p].pop(key) for p in self.parts}
            (pos, quat), q = values["pose"], values["joints"]
            state = state_vector(pos, quat, q[7], q[:7])
            if "environment" in values:
                state = np.r_[state, values["environment"]]
            self.assembler.add_state(stamp, state, {cam: values[f"camera/{cam}"] for cam in self.cameras})
        for table in self.pending.values():  # forget unmatched parts older than a second
            for old in [k for k in table if k < key - 1_000_000]:
                del table[old]

    def on_executed(self, msg: JointTrajectory) -> None:
        if msg.header.frame_id == "hold":  # kept even before `running` arrives; the episode start trims them
            return
        try:
            chunk = convert.msg_to_chunk(msg)
        except convert.ConversionError as err:
            self.get_logger().warning(f"ignored executed action: {err}", throttle_duration_sec=1.0)
            return
        if list(chunk.names) != self.learner.policy.spec.action_names:
            self.get_logger().warning(f"executed action names {list(chunk.names)} differ from the policy's",
                                      throttle_duration_sec=5.0)
            return
        self.assembler.add_action(chunk.stamp, chunk.points[0], is_intervention=chunk.source == "teleop")

    def on_reward(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.RewardRecord)
        if rec is None:
            return
        if self.episode is None or rec.episode == self.episode:  # `running` may not have arrived yet
            self.assembler.add_reward(rec.stamp, rec.reward, rec.success)

    def on_status(self, msg: String) -> None:
        status = decode_or_log(self, msg.data, records.EpisodeStatus)
        if status is None:
            return
        if status.state == "running" and status.episode != self.episode:
            self.episode, self.start_stamp = status.episode, status.stamp
            self.assembler.discard_before(status.stamp)
        elif status.state == "ended" and status.episode == self.episode:
            self.episode = None
            self.end_episode(status)

    # ---- learning ----------------------------------------------------------------------------------------------
    def end_episode(self, status: records.EpisodeStatus) -> None:
        raw, reason = self.assembler.finish(self.start_stamp)
        if raw is None:  # still answer with a version, so a graph waiting for new weights goes on
            self.get_logger().warning(f"episode {status.episode} not stored: {reason}")
            self.work.put(Work(status.episode, status.outcome, 0, float("nan")))
            return
        if reason:
            self.get_logger().warning(f"episode {status.episode}: {reason}")
        policy = self.learner.policy
        actions = policy.normalizer.normalize_actions(torch.as_tensor(raw.actions)).clamp(-1, 1).numpy()
        episode = Episode(raw.states, actions, raw.rewards, raw.terminated, raw.interventions, images=raw.images)
        save_episode(episode, self.replay_dir, self.online_episodes)  # persisted before any update uses it
        self.online_episodes += 1
        self.add_to_store(episode)
        self.work.put(Work(status.episode, status.outcome, len(actions), float(raw.interventions.mean())))

    def add_to_store(self, episode: Episode) -> None:
        """An online episode, plus its human-controlled stretches once more as demonstrations (HIL-SERL)."""
        self.store.add(episode)
        for segment in intervention_segments(episode):
            self.store.add(segment)

    def worker(self) -> None:
        """Runs the updates off the ROS thread, so transitions keep arriving while the learner trains. An exception
        or non-finite weights fail that episode's updates only: reported, and the last good weights served on."""
        try:
            with self.lock:
                self.learner.pretrain_critic(lambda: self.store.sample(self.cfg.poco.batch_size, self.rng),
                                             self.critic_warmup)
            self.results.put(("waiting", None, None))
        except Exception as err:  # noqa: BLE001 - any failure is reported, the node keeps serving weights
            self.results.put(("error", None, f"critic warm-up failed: {err!r}\n{traceback.format_exc()}"))
        while True:
            work = self.work.get()
            if work.steps == 0:  # nothing stored: answer anyway, so a graph waiting for newer weights goes on
                self.results.put((self.state, self.reissue_last_good(), None))
                continue
            self.results.put(("training", None, None))
            try:
                with self.lock:
                    row = self.train(work)
                self.results.put(("waiting", self.last_blob, row))
            except Exception as err:  # noqa: BLE001
                message = (f"updates after episode {work.episode} failed; the last good weights stay in service: "
                           f"{err!r}\n{traceback.format_exc()}")
                self.results.put(("error", self.reissue_last_good(), message))

    def reissue_last_good(self) -> bytes:
        """The last good weights under the next version number (a graph waits for a version newer than the one
        that ran its last episode)."""
        policy, _ = policy_from_bytes(self.last_blob)
        self.version += 1
        self.last_blob = policy_to_bytes(policy, self.version)
        return self.last_blob

    def train(self, work: Work) -> dict:
        """UTD 1 on the store for one episode's steps; saves and returns the log row (raises on non-finite weights)."""
        metrics = [self.learner.update(self.store.sample(self.cfg.poco.batch_size, self.rng)).__dict__
                   for _ in range(work.steps)]
        if not self.weights_finite():
            raise FloatingPointError("non-finite actor or critic weights after the updates")
        self.version += 1
        self.trained_episodes += 1
        self.last_blob = policy_to_bytes(self.learner.policy, self.version)
        self.save_state()
        summary = {k: float(np.nanmean([m[k] for m in metrics])) for k in metrics[0]}
        return {"episode": work.episode, "outcome": work.outcome, "steps": work.steps,
                "intervention_rate": work.intervention_rate, "store_steps": len(self.store),
                "updates": self.learner.updates, "version": self.version, **summary}

    def drain_results(self) -> None:
        while not self.results.empty():
            self.state, blob, info = self.results.get()
            if self.state == "error":
                self.message = info
                self.get_logger().error(info)
            elif info is not None:
                self.last_row, self.message = info, ""
                with (self.out / "learner_log.jsonl").open("a") as f:
                    f.write(json.dumps(info) + "\n")
                self.get_logger().info(f"episode {info['episode']} ({info['outcome']}): {info['steps']} updates, "
                                       f"version {info['version']}, q_clip_ratio {info.get('q_clip_ratio', np.nan):.2f}")
            if blob is not None:
                self._publish(blob)
            self.publish_status()

    def publish_status(self) -> None:
        rec = records.LearnerStatus(stamp=self.get_clock().now().nanoseconds * 1e-9, state=self.state,
                                    version=self.version, updates=self.learner.updates, store_steps=len(self.store),
                                    online_episodes=self.online_episodes, message=self.message.split("\n")[0],
                                    last_episode=self.last_row)
        self.pub_status.publish(String(data=records.encode(rec)))

    def announce_when_connected(self) -> None:
        """Seeing a publisher is not enough: its writer may not have matched this reader yet, and what it sends until
        then is lost. Every observation part must have arrived once (the driver streams them even between episodes)."""
        topics = [contract.EXECUTED_ACTION, contract.REWARD]
        if all(self.count_publishers(t.name) > 0 for t in topics) and self.parts_received >= set(self.parts):
            self.announce_timer.cancel()
            self.publish_weights()

    def publish_weights(self) -> None:
        self._publish(self.last_blob)

    def _publish(self, blob: bytes) -> None:
        self.pub_weights.publish(UInt8MultiArray(data=blob))
        rec = records.PolicyVersion(stamp=self.get_clock().now().nanoseconds * 1e-9, version=self.version,
                                    sha256=sha256_hex(blob), policy_type=self.learner.policy.spec.type)
        self.pub_version.publish(String(data=records.encode(rec)))

    def weights_finite(self) -> bool:
        modules = (self.learner.policy, self.learner.critic, self.learner.critic_target)
        return all(torch.isfinite(p).all() for m in modules for p in m.parameters())

    def save_state(self) -> None:
        """Critic first, then the actor: a crash in between leaves an older actor with a newer critic, never a
        checkpoint that fails to load. Adam's moments are not kept; they rebuild within a few hundred updates.
        Non-finite weights are never written: the checkpoint on disk stays the last good one."""
        if not self.weights_finite():
            self.get_logger().error("not saving the learner: its weights are not finite (last good checkpoint kept)")
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_dir / f".{CRITIC_FILE}.tmp"
        save_file(self.learner.critic_tensors(), tmp)
        tmp.replace(self.state_dir / CRITIC_FILE)
        save_policy(self.learner.policy, self.state_dir, self.version)
        tmp = self.state_dir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps({"trained_episodes": self.trained_episodes, "version": self.version}) + "\n")
        tmp.replace(self.state_dir / STATE_FILE)

    def _trained_episodes(self, persisted: int) -> int:
        """Online episodes the checkpoint has been trained on (all of them for a checkpoint without the record)."""
        path = self.state_dir / STATE_FILE
        return min(persisted, json.loads(path.read_text())["trained_episodes"]) if path.exists() else persisted

    def on_save(self, _req, resp):
        with self.lock:
            self.save_state()
        resp.success, resp.message = True, str(self.state_dir)
        return resp

    def close(self) -> None:
        with self.lock:
            self.save_state()


def main(args=None) -> None:
    raise SystemExit(run_node(LearnerNode, args))


if __name__ == "__main__":
    main()
