"""The episode manager's bookkeeping, without ROS: the phase of the cycle idle -> resetting -> running -> ending ->
idle, why the running episode ends, when the next one may start (online RL: on the learner's weights), and each
finished episode's result. robot_rl/nodes/episode_manager.py makes the service calls and publishes around it.

`now` is robot-clock seconds (sim time in simulation), handed in by the node; wall-clock waits use time.monotonic.

Each episode's executed control steps come from the driver's own counters (arm/status `executor`: points executed,
idle and watchdog ticks), taken when the arm is enabled and when it stops executing: the learner, reward node and
recorder account for what they kept against that count (`tally`).
"""
from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# arm/status executor counters of the ticks that publish an executed action: a new point, or a hold (idle, watchdog)
EXECUTED_COUNTERS = ("points_executed", "ticks_idle", "ticks_watchdog")
HELD_COUNTERS = ("ticks_idle", "ticks_watchdog")
ARM_COUNTS_WAIT_S = 2.0  # wall seconds an ending episode waits for the arm's final counters (sent before its reply)
# wall seconds a timed-out episode waits for the next reward record while those up to its time limit are still
# missing: a busy reward node is waited for as long as its records keep coming, one that stopped for this long is not
REWARD_WAIT_S = 5.0


@dataclass
class EpisodeResult:
    episode: int
    task: str
    seed: int | None
    outcome: str
    steps: int
    duration_s: float
    reason: str
    executed_steps: int | None = None  # by the driver's counters; None when it reports none
    held_steps: int | None = None

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
        self.rewarded = False  # a reward record of the running episode came
        self.active_version = -1     # what the policy node runs (policy/active)
        self.published_version = -1  # the newest the learner announced (policy/version)
        self.trained_through = -1    # the newest episode whose updates the learner's published weights hold
        self.version_at_end: int | None = None  # the version that ran the last episode
        self.wait_since = time.monotonic()
        self.arm_counts_start: dict | None = None  # the driver's executor counters when it began this episode
        self.arm_counts_end: tuple[float, dict] | None = None  # (stamp, counters) once it stopped executing
        self.disabled_at: float | None = None  # wall time the ending episode's arm was disabled at

    # ---- what ends a running episode ---------------------------------------------------------------------------
    def request_end(self, outcome: str, reason: str, stamp: float | None = None) -> None:
        """End the running episode; `stamp` is when it ended in robot time, if known (a reward record's stamp; the
        clock the node reads can lag behind it on a loaded machine)."""
        if self.end_request is None:
            self.end_request = (outcome, reason)
            self.end_stamp = stamp

    def on_reward(self, stamp: float, episode: int, success: bool, source: str) -> None:
        """A success ends the episode; one stamped within the time limit still does after the limit was read, as
        a reward node behind the robot's clock can score the episode's last steps once it is ending."""
        if self.phase not in ("running", "ending") or episode != self.episode or stamp < self.start_stamp:
            return
        self.last_reward, self.rewarded = (stamp, time.monotonic()), True
        if not (success and self.cfg.terminate_on_success):
            return
        if self.end_request is None:
            self.request_end("success", f"{source} reported success", stamp)
        elif self.end_request[0] == "timeout" and self.end_stamp is not None and stamp <= self.end_stamp:
            self.end_request, self.end_stamp = ("success", f"{source} reported success"), stamp

    def on_arm_status(self, stamp: float, state: str, message: str, watchdog: bool,
                      executor: dict[str, float] | None = None) -> None:
        """`executor`: the driver's counters; the first `ready` record of an episode opens its count, the first other
        one after it (disabled, estop, error: nothing executes then) closes it."""
        if executor and all(k in executor for k in EXECUTED_COUNTERS) and self.phase in ("resetting", "running",
                                                                                         "ending"):
            if state == "ready" and self.arm_counts_start is None:
                self.arm_counts_start = executor
            elif state != "ready" and self.arm_counts_start is not None and self.arm_counts_end is None:
                self.arm_counts_end = (stamp, executor)
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
        limit = self.start_stamp + self.cfg.max_steps * self.period
        if self.end_request is None and now >= limit - 1e-9:
            self.request_end("timeout", f"{self.cfg.max_steps} steps", limit)
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
        self.arm_counts_start = self.arm_counts_end = None

    def enable_refused(self) -> None:
        self.phase = "idle"
        self.start_requested = False

    def start_running(self) -> None:
        self.end_request = None
        self.last_reward, self.rewarded = (self.start_stamp, time.monotonic()), False
        self.phase = "running"

    def arm_disabled(self) -> None:
        self.disabled_at = time.monotonic()

    def ready_to_finish(self) -> bool:
        """The arm is disabled, its final counters of the episode are in (or will not come), and a timeout has the
        reward records up to its limit (or has waited for them long enough)."""
        if self.disabled_at is None:
            return False
        return self._arm_counted(time.monotonic() - self.disabled_at) and self._rewards_in()

    def _arm_counted(self, waited: float) -> bool:
        """The arm's final counters came, or will not: a driver without counters, or none within ARM_COUNTS_WAIT_S
        of its reply."""
        return self.arm_counts_start is None or self.arm_counts_end is not None or waited > ARM_COUNTS_WAIT_S

    def _rewards_in(self) -> bool:
        """Only a timeout waits for rewards: the reward node runs behind the robot's clock, and a success it scored
        before the limit may still be on its way. It waits while records keep coming (on a busy machine a classifier
        can lag many seconds), until none has come for REWARD_WAIT_S; no wait where no reward ever came."""
        if not self.rewarded or self.end_request[0] != "timeout" or self.end_stamp is None:
            return True
        stamp, arrival = self.last_reward
        silent = time.monotonic() - max(arrival, self.disabled_at)
        return stamp > self.end_stamp - 0.5 * self.period or silent > REWARD_WAIT_S

    def executed_counts(self) -> tuple[int | None, int | None, float | None]:
        """(ticks executed, of those held, the stamp the driver stopped at) of the ending episode, or Nones."""
        if self.arm_counts_start is None or self.arm_counts_end is None:
            return None, None, None
        stamp, end = self.arm_counts_end
        delta = {k: int(round(end[k] - self.arm_counts_start[k])) for k in EXECUTED_COUNTERS}
        return sum(delta.values()), sum(delta[k] for k in HELD_COUNTERS), stamp

    def finish(self, now: float) -> EpisodeResult:
        """The arm is disabled: the running episode's result (appended to results_path), then idle for the next."""
        outcome, reason = self.end_request
        end = self.end_stamp if self.end_stamp is not None else max(now, self.start_stamp)
        steps = int(round((end - self.start_stamp) / self.period))
        executed, held, _ = self.executed_counts()
        self.arm_counts_start = self.arm_counts_end = self.disabled_at = None
        result = EpisodeResult(self.episode, self.task, self.seed, outcome, steps, end - self.start_stamp, reason,
                               executed, held)
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


def tally(episode: int, expected: int | None, kept: int, *, excluded: dict[str, int] | None = None,
          dropped: dict[str, int] | None = None, rewards: int | None = None,
          surplus: str | None = "more than executed", unexplained: str = "unexplained",
          drops_are_losses: bool = False) -> dict:
    """One node's accounting of one episode (the fields of records.Accounting): `kept` of `expected` ticks, the ticks
    left out by design (`excluded`) and the counters that explain a shortfall (`dropped`), and the cause of any loss
    in words. A counter is named as a cause when ticks are missing (or `drops_are_losses`: each one is a tick of the
    episode left without, whatever the totals), a shortfall no counter explains as `unexplained`, more kept than
    expected as `surplus` (None: no fault, e.g. the reward node also scores the ticks before the arm is enabled)."""
    excluded = {k: int(v) for k, v in (excluded or {}).items() if v}
    dropped = {k: int(v) for k, v in (dropped or {}).items() if v}
    lost = None if expected is None else expected - kept - sum(excluded.values())
    rewards_lost = 0 if rewards is None else kept - rewards
    short = lost is None or lost > 0
    causes = [f"{n} {name}" for name, n in dropped.items()] if short or drops_are_losses else []
    if lost is not None and lost > sum(dropped.values()):
        causes.append(f"{lost - sum(dropped.values())} {unexplained}")
    elif lost is not None and lost < 0 and surplus:
        causes.append(f"{-lost} {surplus}")
    if rewards_lost:
        causes.append(f"{rewards_lost} kept without their reward record")
    return {"episode": episode, "expected": expected, "kept": kept, "rewards": rewards, "excluded": excluded,
            "dropped": dropped, "lost": lost, "rewards_lost": rewards_lost, "cause": ", ".join(causes)}


class StampTally:
    """A node's running count of one episode's ticks (those it kept, those it dropped by cause) from an input stream
    that arrives in order: settled once an input stamped after the episode's end has come."""

    def __init__(self, episode: int):
        self.episode = episode
        self.kept: list[float] = []
        self.dropped: dict[str, int] = {}
        self.failure = ""  # why the rest of the episode was not kept (e.g. the reward source's setup failed)
        self.end: float | None = None
        self.expected: int | None = None

    def drop(self, cause: str, n: int = 1) -> None:
        self.dropped[cause] = self.dropped.get(cause, 0) + n

    def ended(self, end_stamp: float, expected: int | None) -> None:
        self.end, self.expected = end_stamp, expected

    def settled(self, newest_stamp: float) -> bool:
        return self.end is not None and newest_stamp > self.end

    def result(self, surplus: str | None) -> dict:
        """tally() of the kept ticks; ticks missing from the kept stamps' grid are `inputs_missing`."""
        return tally(self.episode, self.expected, len(self.kept), dropped={**self.dropped,
                     "inputs_missing": grid_gaps(self.kept)}, surplus=surplus, unexplained=self.failure or "unexplained",
                     drops_are_losses=True)


def grid_gaps(stamps: list[float]) -> int:
    """Ticks missing between sorted stamps on their own grid (the median spacing; ticks jitter by less than half)."""
    if len(stamps) < 3:
        return 0
    spacing = np.diff(stamps)
    period = float(np.median(spacing))
    return int(sum(round(d / period) - 1 for d in spacing if d > 1.5 * period)) if period > 0 else 0


def recording_accounting(episode: int, executed: int | None, counts: dict[str, int]) -> dict:
    """The recorder's tally of one episode from its frame grid's counters."""
    frames = counts.get("frames", 0)
    return tally(episode, executed, frames, rewards=frames - counts.get("frames_without_reward", 0),
                 excluded={"held_in_another_action_space": counts.get("foreign_actions", 0)},
                 dropped={k: counts.get(k, 0) for k in ("missed_slots", "frames_without_action",
                                                        "frames_without_state")})


class SaveReports:
    """The recorder's accounting of the episodes queued for saving, reported as its writer thread ends each: the
    writer ends saves in order and counts them (saved, failed), so each change of its counters is the oldest
    queued episode's outcome."""

    def __init__(self):
        self.pending: deque[dict] = deque()
        self.seen = (0, 0)   # the writer's (saved, failed) counters when last reported

    def queue(self, accounting: dict) -> None:
        self.pending.append(accounting)

    def finished(self, saved: int, failed: int) -> list[tuple[str, dict]]:
        """("saved" | "failed", accounting) for each save the writer ended since the last call; a failed save loses
        every frame it kept."""
        out = []
        while self.pending and (saved, failed) != self.seen:
            done, ok = self.pending.popleft(), saved > self.seen[0]
            self.seen = (self.seen[0] + ok, self.seen[1] + (not ok))
            if not ok:
                done = tally(done["episode"], done["expected"], 0, excluded=done["excluded"],
                             dropped={**done["dropped"], "write_failed": done["kept"]})
            out.append(("saved" if ok else "failed", done))
        return out
