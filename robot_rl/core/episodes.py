"""The episode manager's bookkeeping, without ROS: the phase of the cycle idle -> resetting -> running -> ending ->
idle, why the running episode ends, when the next one may start (online RL: on the learner's weights), and each
finished episode's result. robot_rl/nodes/episode_manager.py makes the service calls and publishes around it.

`now` is robot-clock seconds (sim time in simulation), handed in by the node; wall-clock waits use time.monotonic.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class EpisodeResult:
    episode: int
    task: str
    seed: int | None
    outcome: str
    steps: int
    duration_s: float
    reason: str

    def record(self) -> dict:
        """The line appended to `results_path`."""
        return {**asdict(self), "duration_s": round(self.duration_s, 4)}


class EpisodeBook:
    def __init__(self, cfg, log):
        """cfg: the node's EpisodeConfig (robot_rl/configs/episode.py, a layer above core); log: any logger."""
        self.cfg, self.log = cfg, log
        self.period = 1.0 / cfg.control_hz
        self.episode = 0
        self.phase = "idle"  # idle | resetting | running | ending
        self.start_requested = cfg.autostart
        self.end_request: tuple[str, str] | None = None  # (outcome, reason)
        self.end_stamp: float | None = None
        self.seed: int | None = None
        self.task = ""
        self.start_stamp = 0.0
        self.done = False
        self.last_reward = (0.0, 0.0)  # (robot stamp, wall time) of the running episode's newest reward, or its start
        self.active_version = -1     # what the policy node runs (policy/active)
        self.published_version = -1  # the newest the learner announced (policy/version)
        self.trained_through = -1    # the newest episode whose updates the learner's published weights hold
        self.version_at_end: int | None = None  # the version that ran the last episode
        self.wait_since = time.monotonic()

    # ---- what ends a running episode ---------------------------------------------------------------------------
    def request_end(self, outcome: str, reason: str, stamp: float | None = None) -> None:
        """End the running episode; `stamp` is when it ended in robot time, if known (a reward record's stamp; the
        clock the node reads can lag behind it on a loaded machine)."""
        if self.end_request is None:
            self.end_request = (outcome, reason)
            self.end_stamp = stamp

    def on_reward(self, stamp: float, episode: int, success: bool, source: str) -> None:
        if self.phase == "running" and episode == self.episode and stamp >= self.start_stamp:
            self.last_reward = (stamp, time.monotonic())
            if success and self.cfg.terminate_on_success:
                self.request_end("success", f"{source} reported success", stamp)

    def on_arm_status(self, stamp: float, state: str, message: str, watchdog: bool) -> None:
        if self.phase == "running" and state in ("estop", "error"):
            self.request_end("interrupted", f"arm is in {state}: {message}")
        elif self.phase == "running" and watchdog and stamp >= self.start_stamp:
            self.request_end("interrupted", "the arm's watchdog is holding it: no new action came (policy or "
                                            "teleop silent, or observations refused as stale)", stamp)

    def on_operator(self, outcome: str) -> tuple[bool, str]:
        """episode/stop (outcome `stopped`: also pauses until episode/start), mark_success, mark_failure."""
        if outcome == "stopped":
            self.start_requested = False
        if self.phase != "running":
            return False, f"no episode is running (phase {self.phase})"
        self.request_end(outcome, "operator")
        return True, f"episode {self.episode}: {outcome}"

    def check_running(self, now: float) -> None:
        """Time out after max_steps; interrupt on a reward outage."""
        if self.end_request is None and now - self.start_stamp >= self.cfg.max_steps * self.period - 1e-9:
            self.request_end("timeout", f"{self.cfg.max_steps} steps")
        if self.end_request is None and self.reward_outage(now):
            self.request_end("interrupted", f"no reward record for {self.cfg.reward_timeout_s} s: is the "
                                            "reward node running?")

    def reward_outage(self, now: float) -> bool:
        """No reward record for `reward_timeout_s` on both clocks (since the episode's start or its newest one)."""
        if not self.cfg.reward_timeout_s:
            return False
        stamp, arrival = self.last_reward
        timeout = self.cfg.reward_timeout_s
        return now - stamp > timeout and time.monotonic() - arrival > timeout

    # ---- when the next one starts ------------------------------------------------------------------------------
    def waiting_for_weights(self) -> bool:
        """Online RL: wait before an episode (or, once done, before exiting) until the weights it should run are
        there. each_episode: weights newer than those of the last episode (or any, before the first), running in the
        policy node. continuous: the learner trains while episodes run; the first episode waits for its weights,
        the next ones only while more than `max_lag_episodes` ended episodes still owe updates, the exit until none
        does."""
        sync = self.cfg.policy_sync
        if sync == "off":
            return False
        if sync == "continuous" and self.episode > 0:
            owing = (self.episode - 1) - self.trained_through  # ended episodes whose updates are not all done
            if owing <= (0 if self.done else self.cfg.max_lag_episodes):
                return False
        else:
            fresh = self.published_version > (self.version_at_end if self.version_at_end is not None else -1)
            if fresh and self.active_version >= self.published_version:
                self.version_at_end = None
                return False
        if time.monotonic() - self.wait_since > self.cfg.policy_wait_timeout_s:
            self.log.warning(f"no new policy weights after {self.cfg.policy_wait_timeout_s} s (learner published "
                             f"{self.published_version}, trained through episode {self.trained_through}, policy "
                             f"runs {self.active_version}); going on")
            self.version_at_end, self.published_version = None, self.active_version
            self.trained_through = self.episode - 1
            return False
        return True

    # ---- the cycle ---------------------------------------------------------------------------------------------
    def reset_done(self, info: dict, now: float) -> None:
        """arm/reset answered: its JSON {seed, task, stamp} ({} when refused)."""
        self.seed = info.get("seed")
        self.task = info.get("task", "")
        self.start_stamp = float(info.get("stamp", now))

    def enable_refused(self) -> None:
        self.phase = "idle"
        self.start_requested = False

    def start_running(self) -> None:
        self.end_request = None
        self.last_reward = (self.start_stamp, time.monotonic())
        self.phase = "running"

    def finish(self, now: float) -> EpisodeResult:
        """The arm is disabled: the running episode's result (appended to results_path), then idle for the next."""
        outcome, reason = self.end_request
        end = self.end_stamp if self.end_stamp is not None else max(now, self.start_stamp)
        steps = int(round((end - self.start_stamp) / self.period))
        result = EpisodeResult(self.episode, self.task, self.seed, outcome, steps, end - self.start_stamp, reason)
        if self.cfg.results_path:
            path = Path(self.cfg.results_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:
                f.write(json.dumps(result.record()) + "\n")
        self.episode += 1
        self.end_request = None
        if self.cfg.policy_sync != "off":
            self.version_at_end, self.wait_since = self.active_version, time.monotonic()
        self.phase = "idle"
        if self.cfg.num_episodes and self.episode >= self.cfg.num_episodes:
            self.start_requested = False
            self.done = self.cfg.exit_when_done
        return result
