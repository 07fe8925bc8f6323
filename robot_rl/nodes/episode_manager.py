"""Episode manager: reset -> start -> run until success / timeout / operator stop -> status record, repeated.

A running episode ends as `interrupted` when the arm reports e-stop or error, when the arm's watchdog holds it
(actions stopped coming: the policy or teleop died, or the policy refuses stale observations), and, with
`reward_timeout_s`, when the reward records stop (the reward node died); with it set, an episode starts only once
a reward publisher is there.

Every transition is published on `episode/status` (latched) and, when `results_path` is set, each finished episode is
appended to that JSON-lines file. Durations are measured on the robot clock (sim time in simulation).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel, Field
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from robot_rl.ros import contract, records
from robot_rl.ros.node_runtime import ExitRequest, declare_config, decode_or_log, run_node


class EpisodeConfig(BaseModel, extra="forbid"):
    num_episodes: int = Field(0, ge=0, description="0 = run until stopped")
    max_steps: int = Field(150, ge=1, description="control steps before the episode times out")
    control_hz: float = Field(15.0, gt=0)
    autostart: bool = True
    terminate_on_success: bool = True
    results_path: str = ""
    exit_when_done: bool = True
    service_timeout_s: float = Field(10.0, gt=0)
    wait_for_policy_version: bool = Field(False, description="start an episode only once the policy node runs "
                                                             "newer weights than in the last one (online RL)")
    policy_wait_timeout_s: float = Field(600.0, gt=0, description="wall seconds; then start anyway, with a warning")
    reward_timeout_s: float = Field(0.0, ge=0, description="end the episode as interrupted when no reward record "
                                                          "came for this long, since its start or its newest one, "
                                                          "on the robot clock and on the wall clock (a stalled sim "
                                                          "clock is no reward outage); 0: off")


CONFIG = EpisodeConfig


class EpisodeManagerNode(Node):
    def __init__(self):
        super().__init__("episode_manager")
        self.cfg = declare_config(self, EpisodeConfig)
        self.period = 1.0 / self.cfg.control_hz
        self.episode = 0
        self.phase = "idle"  # idle | resetting | running | ending
        self.start_requested = self.cfg.autostart
        self.end_request: tuple[str, str] | None = None
        self.end_stamp: float | None = None
        self.seed: int | None = None
        self.task = ""
        self.start_stamp = 0.0
        self.outcomes: list[dict] = []
        self.pending_call = None
        self.done = False
        self.last_reward = (0.0, 0.0)  # (robot stamp, wall time) of the running episode's newest reward, or its start

        self.pub_status = self.create_publisher(String, contract.EPISODE_STATUS.name, contract.EPISODE_STATUS.qos)
        self.create_subscription(String, contract.REWARD.name, self.on_reward, contract.REWARD.qos)
        self.create_subscription(String, contract.ARM_STATUS.name, self.on_arm_status, contract.ARM_STATUS.qos)
        self.active_version = -1     # what the policy node runs (policy/active)
        self.published_version = -1  # the newest the learner announced (policy/version)
        self.version_at_end: int | None = None  # the version that ran the last episode
        self.wait_since = time.monotonic()
        if self.cfg.wait_for_policy_version:
            self.create_subscription(String, contract.POLICY_ACTIVE.name, self.on_active, contract.POLICY_ACTIVE.qos)
            self.create_subscription(String, contract.POLICY_VERSION.name, self.on_published,
                                     contract.POLICY_VERSION.qos)
        self.cli_reset = self.create_client(Trigger, "arm/reset")
        self.cli_enable = self.create_client(SetBool, "arm/enable")
        for name, handler in (("episode/start", self.on_start), ("episode/stop", self.on_stop),
                              ("episode/mark_success", self.on_mark_success),
                              ("episode/mark_failure", self.on_mark_failure)):
            self.create_service(Trigger, name, handler)
        self.create_timer(0.02, self.step, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.publish_status("idle")

    # ---- inputs ------------------------------------------------------------------------------------------------
    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_reward(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.RewardRecord)
        if rec is None:
            return
        if self.phase == "running" and rec.episode == self.episode and rec.stamp >= self.start_stamp:
            self.last_reward = (rec.stamp, time.monotonic())
            if rec.success and self.cfg.terminate_on_success:
                self.request_end("success", f"{rec.source} reported success", rec.stamp)

    def on_arm_status(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.ArmStatus)
        if rec is None:
            return
        if self.phase == "running" and rec.state in ("estop", "error"):
            self.request_end("interrupted", f"arm is in {rec.state}: {rec.message}")
        elif self.phase == "running" and rec.watchdog and rec.stamp >= self.start_stamp:
            self.request_end("interrupted", "the arm's watchdog is holding it: no new action came (policy or "
                                            "teleop silent, or observations refused as stale)", rec.stamp)

    def on_active(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.PolicyVersion)
        if rec is not None:
            self.active_version = rec.version

    def on_published(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.PolicyVersion)
        if rec is not None:
            self.published_version = max(self.published_version, rec.version)

    def waiting_for_weights(self) -> bool:
        """Online RL: start an episode only when the learner has published weights newer than those of the last
        episode (or any, before the first) and the policy node runs them."""
        if not self.cfg.wait_for_policy_version:
            return False
        fresh = self.published_version > (self.version_at_end if self.version_at_end is not None else -1)
        if fresh and self.active_version >= self.published_version:
            self.version_at_end = None
            return False
        if time.monotonic() - self.wait_since > self.cfg.policy_wait_timeout_s:
            self.get_logger().warning(f"no new policy weights after {self.cfg.policy_wait_timeout_s} s "
                                      f"(learner published {self.published_version}, policy runs "
                                      f"{self.active_version}); going on")
            self.version_at_end, self.published_version = None, self.active_version
            return False
        return True

    def request_end(self, outcome: str, reason: str, stamp: float | None = None) -> None:
        """End the running episode; `stamp` is when it ended in robot time, if known (a reward record's stamp; the
        clock this node reads can lag behind it on a loaded machine)."""
        if self.end_request is None:
            self.end_request = (outcome, reason)
            self.end_stamp = stamp

    def on_start(self, _req, resp):
        self.start_requested = True
        resp.success, resp.message = True, f"episode {self.episode} will start" if self.phase == "idle" else self.phase
        return resp

    def _end_service(self, outcome: str, resp):
        if self.phase != "running":
            resp.success, resp.message = False, f"no episode is running (phase {self.phase})"
            return resp
        self.request_end(outcome, "operator")
        resp.success, resp.message = True, f"episode {self.episode}: {outcome}"
        return resp

    def on_stop(self, _req, resp):
        self.start_requested = False  # an operator stop pauses; episode/start resumes
        return self._end_service("stopped", resp)

    def on_mark_success(self, _req, resp):
        return self._end_service("success", resp)

    def on_mark_failure(self, _req, resp):
        return self._end_service("failure", resp)

    # ---- state machine -----------------------------------------------------------------------------------------
    def step(self) -> None:
        if self.done and not self.waiting_for_weights():  # online RL: exit once the last episode's weights run
            raise ExitRequest(0)
        if self.pending_call is not None and not self.pending_call.done():
            return
        if self.phase == "idle" and self.start_requested:
            if self.waiting_for_weights():
                return
            if not (self.cli_reset.service_is_ready() and self.cli_enable.service_is_ready()):
                return
            if self.cfg.reward_timeout_s and not self.count_publishers(contract.REWARD.name):
                self.get_logger().info("waiting for a reward publisher (reward_timeout_s is set)",
                                       throttle_duration_sec=5.0)
                return
            self.phase = "resetting"
            self.publish_status("resetting")
            self.pending_call = self.cli_reset.call_async(Trigger.Request())
            self.pending_call.add_done_callback(self.after_reset)
        elif self.phase == "running":
            elapsed = self.now() - self.start_stamp
            if self.end_request is None and elapsed >= self.cfg.max_steps * self.period - 1e-9:
                self.request_end("timeout", f"{self.cfg.max_steps} steps")
            if self.end_request is None and self.reward_outage():
                self.request_end("interrupted", f"no reward record for {self.cfg.reward_timeout_s} s: is the "
                                                "reward node running?")
            if self.end_request is not None:
                self.phase = "ending"
                self.pending_call = self.cli_enable.call_async(SetBool.Request(data=False))
                self.pending_call.add_done_callback(self.after_disable)

    def reward_outage(self) -> bool:
        """No reward record for `reward_timeout_s` on both clocks (since the episode's start or its newest one)."""
        if not self.cfg.reward_timeout_s:
            return False
        stamp, arrival = self.last_reward
        timeout = self.cfg.reward_timeout_s
        return self.now() - stamp > timeout and time.monotonic() - arrival > timeout

    def after_reset(self, future) -> None:
        result = future.result()
        info = json.loads(result.message) if result.success else {}
        self.seed = info.get("seed")
        self.task = info.get("task", "")
        self.start_stamp = float(info.get("stamp", self.now()))
        self.pending_call = self.cli_enable.call_async(SetBool.Request(data=True))
        self.pending_call.add_done_callback(self.after_enable)

    def after_enable(self, future) -> None:
        if not future.result().success:
            self.get_logger().error(f"arm/enable refused: {future.result().message}")
            self.phase = "idle"
            self.start_requested = False
            self.publish_status("idle", reason=f"arm refused to enable: {future.result().message}")
            return
        self.end_request = None
        self.last_reward = (self.start_stamp, time.monotonic())
        self.phase = "running"
        self.publish_status("running", stamp=self.start_stamp)

    def after_disable(self, _future) -> None:
        outcome, reason = self.end_request
        end = self.end_stamp if self.end_stamp is not None else max(self.now(), self.start_stamp)
        steps = int(round((end - self.start_stamp) / self.period))
        result = {"episode": self.episode, "task": self.task, "seed": self.seed, "outcome": outcome,
                  "steps": steps, "duration_s": round(end - self.start_stamp, 4), "reason": reason}
        self.outcomes.append(result)
        self.publish_status("ended", outcome=outcome, steps=steps, duration_s=end - self.start_stamp, reason=reason)
        self.get_logger().info(f"episode {self.episode} {outcome} after {steps} steps ({reason})")
        if self.cfg.results_path:
            path = Path(self.cfg.results_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:
                f.write(json.dumps(result) + "\n")
        self.episode += 1
        self.end_request = None
        if self.cfg.wait_for_policy_version:
            self.version_at_end, self.wait_since = self.active_version, time.monotonic()
        self.phase = "idle"
        if self.cfg.num_episodes and self.episode >= self.cfg.num_episodes:
            self.start_requested = False
            self.done = self.cfg.exit_when_done

    def publish_status(self, state: str, stamp: float | None = None, **fields) -> None:
        rec = records.EpisodeStatus(stamp=self.now() if stamp is None else stamp, episode=self.episode, state=state,
                                    task=self.task, seed=self.seed, **fields)
        self.pub_status.publish(String(data=records.encode(rec)))


def main(args=None) -> None:
    raise SystemExit(run_node(EpisodeManagerNode, args))


if __name__ == "__main__":
    main()
