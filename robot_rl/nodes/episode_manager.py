"""Episode manager: reset -> start -> run until success / timeout / operator stop -> status record, repeated.

A running episode ends as `interrupted` when the arm reports e-stop or error, when the arm's watchdog holds it
(actions stopped coming: the policy or teleop died, or the policy refuses stale observations), and, with
`reward_timeout_s`, when the reward records stop (the reward node died); with it set, an episode starts only once
a reward publisher is there.

Every transition is published on `episode/status` (latched) and, when `results_path` is set, each finished episode is
appended to that JSON-lines file. Durations are measured on the robot clock (sim time in simulation). The
bookkeeping is robot_rl/core/episodes.py; this node calls the arm services and publishes.

An arm/reset or arm/enable call unanswered for `service_retry_s` (wall clock) is sent again: DDS can lose a service
response (Fast DDS drops one when the server has not yet matched the client's response reader), and both calls are
safe to repeat (the drivers answer a repeated reset with the same seed). Only the newest call's answer acts.
"""
from __future__ import annotations

import json
import time

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from robot_rl.configs.episode import EpisodeConfig
from robot_rl.core.episodes import EpisodeBook
from robot_rl.ros import contract, records
from robot_rl.ros.node_runtime import ExitRequest, declare_config, decode_or_log, run_node

UNANSWERED_WARN_S = 10.0  # a start waiting this long for the arm's services says so (a silent graph otherwise)


class EpisodeManagerNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("episode_manager", **node_kwargs)
        self.cfg = declare_config(self, EpisodeConfig)
        self.book = EpisodeBook(self.cfg, self.get_logger())
        self.pending_call = None
        self.pending = None  # (client, request, done) of the pending call, to send it again
        self.pending_since = 0.0  # monotonic time it was sent

        self.pub_status = contract.publisher(self, contract.EPISODE_STATUS)
        contract.subscribe(self, contract.REWARD, self.on_reward)
        contract.subscribe(self, contract.ARM_STATUS, self.on_arm_status)
        if self.cfg.policy_sync != "off":
            contract.subscribe(self, contract.POLICY_ACTIVE, self.on_active)
            contract.subscribe(self, contract.POLICY_VERSION, self.on_published)
        self.cli_reset = contract.client(self, contract.ARM_RESET)
        self.cli_enable = contract.client(self, contract.ARM_ENABLE)
        for service, outcome in ((contract.EPISODE_STOP, "stopped"), (contract.EPISODE_MARK_SUCCESS, "success"),
                                 (contract.EPISODE_MARK_FAILURE, "failure")):
            contract.serve(self, service, lambda _req, resp, outcome=outcome: self.on_operator(outcome, resp))
        contract.serve(self, contract.EPISODE_START, self.on_start)
        self.create_timer(0.02, self.step, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.publish_status("idle")

    # ---- inputs ------------------------------------------------------------------------------------------------
    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_reward(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.RewardRecord)
        if rec is not None:
            self.book.on_reward(rec.stamp, rec.episode, rec.success, rec.source)

    def on_arm_status(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.ArmStatus)
        if rec is not None:
            self.book.on_arm_status(rec.stamp, rec.state, rec.message, rec.watchdog, rec.executor)

    def on_active(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.PolicyVersion)
        if rec is not None:
            self.book.active_version = rec.version

    def on_published(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.PolicyVersion)
        if rec is not None:
            self.book.published_version = max(self.book.published_version, rec.version)
            self.book.trained_through = max(self.book.trained_through, rec.trained_through)

    def on_start(self, _req, resp):
        book = self.book
        book.start_requested = True
        resp.success = True
        resp.message = f"episode {book.episode} will start" if book.phase == "idle" else book.phase
        return resp

    def on_operator(self, outcome: str, resp):
        resp.success, resp.message = self.book.on_operator(outcome)
        return resp

    # ---- the cycle ---------------------------------------------------------------------------------------------
    def step(self) -> None:
        book = self.book
        if book.done and not book.waiting_for_weights():  # online RL: exit once the last episode's weights run
            raise ExitRequest(0)
        if self.pending_call is not None and not self.pending_call.done():
            waited = time.monotonic() - self.pending_since
            if waited > self.cfg.service_retry_s:
                client, request, done = self.pending
                self.get_logger().warning(f"{client.srv_name} has not answered for {waited:.1f} s: sending the "
                                          "request again")
                client.remove_pending_request(self.pending_call)  # its answer, if it still comes, is dropped
                self.call(client, request, done)
            return
        if book.phase == "idle" and book.start_requested:
            if book.waiting_for_weights():
                return
            if not (self.cli_reset.service_is_ready() and self.cli_enable.service_is_ready()):
                self.get_logger().warning("start requested, still waiting for the arm's reset and enable services",
                                          throttle_duration_sec=UNANSWERED_WARN_S, skip_first=True)
                return
            if self.cfg.reward_timeout_s and not self.count_publishers(contract.REWARD.name):
                self.get_logger().info("waiting for a reward publisher (reward_timeout_s is set)",
                                       throttle_duration_sec=5.0)
                return
            book.phase = "resetting"
            self.publish_status("resetting")
            self.call(self.cli_reset, Trigger.Request(), self.after_reset)
        elif book.phase == "running":
            book.check_running(self.now())
            if book.end_request is not None:
                book.phase = "ending"
                self.call(self.cli_enable, SetBool.Request(data=False), lambda _future: book.arm_disabled())
        elif book.phase == "ending" and book.ready_to_finish():
            self.finish_episode()

    def call(self, client, request, done) -> None:
        """Send `request`; `done(future)` runs on its answer unless a newer call has replaced it by then."""
        self.pending, self.pending_since = (client, request, done), time.monotonic()
        future = self.pending_call = client.call_async(request)
        future.add_done_callback(lambda f: done(f) if f is self.pending_call else None)

    def after_reset(self, future) -> None:
        result = future.result()
        self.book.reset_done(json.loads(result.message) if result.success else {}, self.now())
        self.call(self.cli_enable, SetBool.Request(data=True), self.after_enable)

    def after_enable(self, future) -> None:
        if not future.result().success:
            self.get_logger().error(f"arm/enable refused: {future.result().message}")
            self.book.enable_refused()
            self.publish_status("idle", reason=f"arm refused to enable: {future.result().message}")
            return
        self.book.start_running()
        self.publish_status("running", stamp=self.book.start_stamp)

    def finish_episode(self) -> None:
        """The `ended` record is stamped no earlier than the driver's last tick of the episode, so the nodes that
        take inputs up to it (reward, recorder) cover every executed step even when this node's clock lags."""
        stopped_at = self.book.executed_counts()[2]
        now = self.now()
        r = self.book.finish(now)
        self.publish_status("ended", stamp=max(now, stopped_at or now), episode=r.episode, outcome=r.outcome,
                            steps=r.steps, duration_s=r.duration_s, reason=r.reason, executed_steps=r.executed_steps,
                            held_steps=r.held_steps)
        self.get_logger().info(f"episode {r.episode} {r.outcome} after {r.steps} steps ({r.reason}); the arm "
                               f"executed {r.executed_steps} ({r.held_steps} held)")

    def publish_status(self, state: str, stamp: float | None = None, episode: int | None = None, **fields) -> None:
        book = self.book
        rec = records.EpisodeStatus(stamp=self.now() if stamp is None else stamp,
                                    episode=book.episode if episode is None else episode, state=state,
                                    task=book.task, seed=book.seed, **fields)
        self.pub_status.publish(String(data=records.encode(rec)))


def main(args=None) -> None:
    raise SystemExit(run_node(EpisodeManagerNode, args))


if __name__ == "__main__":
    main()
