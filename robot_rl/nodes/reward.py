"""Reward node: one reward record per control step, every term named, from the source chosen by `source`.

Sources (robot_rl/rewards/sources.py): sim | human | classifier | deg | deg+. The `sim` source ticks on the
simulator's task state; every other source ticks on the frames of `camera` (so it runs on hardware too). DEG's
per-episode guidance is made in a worker thread from the episode's first frame; frames that arrive meanwhile wait
in a queue and are scored in order once it is ready, so guidance never blocks the control loop.

The human verdict reaches this node through the episode manager: `episode/mark_success` / `mark_failure` end the
episode with an operator outcome, and this node answers with a final record (success, done). The teleop node's
success / failure buttons call those same services.

Once an episode's inputs are all in (one stamped after its end came), `reward/status` says how many records it got
against the steps the arm executed, and why any tick has none (core.episodes.StampTally). Only then does the next
episode begin here: under load its `running` status can overtake the last inputs of the one that ended.
"""
from __future__ import annotations

from collections import deque

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String

from robot_rl.configs.reward import RewardConfig
from robot_rl.core.episodes import StampTally
from robot_rl.rewards.setup import EpisodeSetup
from robot_rl.rewards.sources import RewardInput, RewardSource, make_source
from robot_rl.ros import contract, convert, records
from robot_rl.ros.node_runtime import ConfigError, declare_config, decode_or_log, run_node

RECENT_S = 2.0  # robot seconds of inputs kept for an episode whose `running` status is still on its way


class RewardNode(Node):
    def __init__(self, source_factory=make_source, **node_kwargs):
        super().__init__("reward", **node_kwargs)
        self.cfg = declare_config(self, RewardConfig)
        try:
            self.source: RewardSource = source_factory(self.cfg)
        except (ValueError, FileNotFoundError) as err:  # e.g. no trained model at the configured path
            raise ConfigError(f"reward source {self.cfg.source!r}: {err}") from None
        self.uses_operator = "human" in (self.cfg.source, self.cfg.success_source if self.cfg.source == "deg+" else "")
        self.episode: int | None = None
        self.task = ""
        self.start_stamp = 0.0
        self.end_stamp = float("inf")  # the episode's end, once its `ended` status came: its last inputs still score
        self.step = 0
        self.ready = False                       # the source has its per-episode setup (guidance)
        self.pending: deque[RewardInput] = deque()
        self.verdict: RewardInput | None = None  # the operator's, scored once every input up to the end has come
        self.last_image = None
        self.last_task_state: dict | None = None
        self.recent: deque[RewardInput] = deque()  # the last RECENT_S of inputs, replayed when an episode starts
        self.setup = EpisodeSetup(self.source.prepare, self.cfg.setup_timeout_s)
        self.pub = None  # made on the first input, so a reward publisher in the graph means its inputs arrive
        self.pub_status = contract.publisher(self, contract.REWARD_STATUS)
        self.tally: StampTally | None = None  # the newest episode's, until reported
        self.later: deque[records.EpisodeStatus] = deque()  # statuses not yet taken (take_statuses)
        self.newest_input = float("-inf")
        contract.subscribe(self, contract.EPISODE_STATUS, self.on_status)
        # every input is a reward record owed: deep reader queues, so a busy node scores late rather than never
        contract.subscribe(self, contract.TASK_STATE, self.on_task_state, contract.LOSSLESS)
        if self.cfg.source != "sim":
            contract.subscribe(self, contract.camera_image(self.cfg.camera), self.on_image, contract.SENSOR_DEEP)
        self.create_timer(0.02, self.drain, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f"reward up: source {self.cfg.source}")

    # ---- episode bookkeeping -----------------------------------------------------------------------------------
    def on_status(self, msg: String) -> None:
        status = decode_or_log(self, msg.data, records.EpisodeStatus)
        if status is not None:
            self.later.append(status)
            self.take_statuses()

    def take_statuses(self) -> None:
        """Statuses in order, but the next episode's only once the inputs up to this one's end are in: under load
        its `running` status can overtake the last inputs (another topic), which would then score for no episode."""
        while self.later and not (self.later[0].state == "running" and self.later[0].episode != self.episode
                                  and self.newest_input <= self.end_stamp < float("inf")):
            self.take(self.later.popleft())

    def take(self, status: records.EpisodeStatus) -> None:
        if status.state == "running":
            if status.episode != self.episode:
                self.begin(status)
            return
        if status.state != "ended" or self.tally is None or status.episode != self.tally.episode:
            return
        self.tally.ended(status.stamp, status.executed_steps)
        if status.episode != self.episode:  # its reward source failed: no records this episode
            return
        # inputs up to the end still score when they arrive after this status (another topic): the last ticks too
        self.end_stamp = status.stamp
        if self.uses_operator and status.outcome in ("success", "failure") and status.reason == "operator":
            # after the records of the inputs up to the end, some still queued on their topic: records stay in order
            self.verdict = RewardInput(status.stamp, self.last_image, self.last_task_state, operator=status.outcome)
            self.drain()

    def begin(self, status: records.EpisodeStatus) -> None:
        if self.verdict is not None and self.ready:  # the inputs stopped before one after its end came
            self.publish(self.verdict)
        self.verdict = None
        if self.tally is not None:  # the previous episode's inputs stopped before one after its end came
            self.report_tally()
        self.tally = StampTally(status.episode)
        self.episode, self.task, self.start_stamp, self.step = status.episode, status.task, status.stamp, 0
        self.end_stamp = float("inf")
        self.ready = False
        self.setup.forget()
        self.pending.clear()
        for obs in self.recent:  # inputs of this episode that arrived before its status
            if obs.stamp >= self.start_stamp:
                self.submit(obs)
        self.drain()

    # ---- inputs ----------------------------------------------------------------------------------------------------
    def on_task_state(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.TaskState)
        if rec is None:
            return
        self.last_task_state = rec.state
        if self.cfg.source == "sim":
            self.on_input(RewardInput(rec.stamp, task_state=rec.state))

    def on_image(self, msg: Image) -> None:
        try:
            image = convert.msg_to_image(msg)
        except ValueError as err:
            self.get_logger().error(f"ignored camera frame: {err}", throttle_duration_sec=1.0)
            return
        self.last_image = image
        self.on_input(RewardInput(convert.from_time(msg.header.stamp), image, self.last_task_state))

    def on_input(self, obs: RewardInput) -> None:
        """Score it if an episode runs, and keep it a while: under load an episode's first inputs can arrive before
        its `running` status (another topic), and would otherwise get no reward."""
        if self.pub is None:
            self.pub = contract.publisher(self, contract.REWARD)
        self.recent.append(obs)
        while self.recent[0].stamp < obs.stamp - RECENT_S:
            self.recent.popleft()
        self.newest_input = max(self.newest_input, obs.stamp)
        if self.episode is not None and self.start_stamp <= obs.stamp <= self.end_stamp:
            self.submit(obs)
        self.drain()
        self.take_statuses()

    # ---- scoring ---------------------------------------------------------------------------------------------------
    def submit(self, obs: RewardInput) -> None:
        if not (self.ready or self.setup.started):  # the episode's first frame: make its guidance off-loop
            self.setup.start(obs, self.task)
        if len(self.pending) >= self.cfg.max_pending_frames:
            self.get_logger().warning("reward source still preparing; dropping the oldest queued frame",
                                      throttle_duration_sec=1.0)
            self.pending.popleft()
            self.tally.drop("queue_full")
        self.pending.append(obs)

    def drain(self) -> None:
        if self.verdict is not None and self.newest_input > self.end_stamp:
            self.submit(self.verdict)
            self.verdict = None
        if self.tally is not None and not self.pending and self.tally.settled(self.newest_input):
            self.report_tally()
        if not self.ready:
            if (outcome := self.setup.poll()) is None:
                return
            ok, why, detail = outcome
            if not ok:
                self.setup_failed(why, detail)
                return
            self.source.reset()
            self.ready = True
        while self.pending:
            self.publish(self.pending.popleft())

    def setup_failed(self, why: str, detail: str = "") -> None:
        """No rewards this episode: reward/status says why once its inputs are in; the episode manager's reward
        timeout (when set) ends it."""
        self.get_logger().error(f"episode {self.episode}: reward source setup failed: {why}; no rewards this "
                                f"episode{detail}")
        self.tally.failure = f"setup_failed: {why}"
        self.pending.clear()
        self.episode = None

    def publish(self, obs: RewardInput) -> None:
        if self.episode is None:
            return
        if self.pub is None:  # an operator's verdict before any input
            self.pub = contract.publisher(self, contract.REWARD)
        try:
            out = self.source.step(obs)
        except ValueError as err:
            self.get_logger().error(f"no reward for this step: {err}", throttle_duration_sec=1.0)
            self.tally.drop("source_error")
            return
        rec = records.RewardRecord(stamp=obs.stamp, episode=self.episode, step=self.step, reward=out.reward,
                                   terms=out.terms, success=out.success, done=out.done, source=self.source.name)
        self.pub.publish(String(data=records.encode(rec)))
        self.step += 1
        if obs.operator is None:  # an operator's verdict is a record more, not a tick
            self.tally.kept.append(obs.stamp)

    def report_tally(self) -> None:
        """reward/status: the records of the tallied episode against the steps the arm executed; it also scores the
        ticks between the reset and the arm's enable, and the one after its last action, so more is no fault."""
        accounting = self.tally.result(surplus=None)
        self.pub_status.publish(String(data=records.encode(records.RewardStatus(
            stamp=self.tally.end if self.tally.end is not None else self.newest_input, accounting=accounting))))
        if accounting["cause"]:
            self.get_logger().warning(f"episode {self.tally.episode}: {accounting['kept']} reward records for "
                                      f"{accounting['expected']} executed steps: {accounting['cause']}")
        self.tally = None

    def destroy_node(self) -> None:
        self.setup.close()
        super().destroy_node()


def main(args=None) -> None:
    raise SystemExit(run_node(RewardNode, args))


if __name__ == "__main__":
    main()
