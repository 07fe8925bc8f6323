"""Learner node: POCO online fine-tuning from the live graph, for one robot or a fleet.

For every robot it serves (`robots`: their namespaces; none: the robot of its own namespace) a RobotFeed assembles
episodes from the observation streams (`joint_states`, `ee_pose`, + `sim/task_state` or camera images as the policy
needs), `executed_action` (human interventions included), `reward` and `episode/status`. Each ended episode goes to
the one ResumableLearner, which persists it and trains on it in a worker thread (`poco.utd_ratio` updates per step),
after the episode or, with `policy_sync: continuous`, while the next ones run. The node publishes the new weights to
every robot (safetensors bytes, with the critic in best_of_n mode, + a `policy/version` record with their sha256 and
that robot's last episode they are fully trained on) and `learner/status`, where a failed update or a refused
episode shows as `error` while the last good weights stay in service. The node can run on another host than the
robots: only these topics cross (docs/architecture.md).
"""
from __future__ import annotations

import queue
import threading

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_msgs.msg import String

from robot_rl.configs.learner import LearnerConfig
from robot_rl.nodes.robot_feed import RobotFeed
from robot_rl.rl.resumable import ResumableLearner, Result, Work
from robot_rl.ros import contract, records
from robot_rl.ros.node_runtime import declare_config, run_node


class LearnerNode(Node):
    def __init__(self):
        super().__init__("learner")
        cfg = declare_config(self, LearnerConfig)
        self.learner = ResumableLearner(cfg.output_dir, cfg.checkpoint, cfg.poco, cfg.seed, cfg.dataset)
        self.publish_every = cfg.publish_every if cfg.policy_sync == "continuous" else 0
        self.feeds = [RobotFeed(self, robot, self.learner.policy.spec, 1.0 / cfg.control_hz, self.end_episode)
                      for robot in (cfg.robots or [""])]
        self.work: queue.Queue[Work] = queue.Queue()  # the updates owed, first those the learner died before
        for work in self.learner.untrained:
            self.work.put(work)
        self.results: queue.Queue[str | Result] = queue.Queue()  # the worker's news: a state or a Result
        self.state, self.message, self.last_row = "warming_up", "", {}
        self.last_accounting: dict | None = None  # the newest ended episode's (core.episodes.tally)

        self.pub_status = contract.publisher(self, contract.LEARNER_STATUS)
        contract.serve(self, contract.LEARNER_SAVE, self.on_save)
        # waits on threads and on DDS delivery are wall time, whichever robot's sim clock the node would follow
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(0.05, self.drain_results, clock=steady)
        self.create_timer(0.1, self.end_when_complete, clock=steady)  # the deadlines; samples end episodes earlier
        threading.Thread(target=self.worker, daemon=True).start()
        # announce the weights to a robot (which lets its episode manager start) only once the streams the learner
        # records are discovered: an episode that began before would reach the learner without its first states
        self.announce_timer = self.create_timer(0.1, self.announce_when_connected, clock=steady)
        self.publish_status()
        robots = ", ".join(cfg.robots) or "its own namespace"
        self.get_logger().info(f"learner up: {self.learner.summary()}, mode {cfg.poco.mode}, serving {robots}")

    def end_when_complete(self) -> None:
        for feed in self.feeds:
            feed.end_when_complete()

    # ---- learning ----------------------------------------------------------------------------------------------
    def end_episode(self, feed: RobotFeed, status: records.EpisodeStatus, start: float, end: float) -> None:
        expected = status.expected_actions
        work, self.last_accounting = self.learner.take_episode(feed.assembler, start, status.episode,
                                                               status.outcome, expected, feed.robot, end)
        if self.last_accounting["cause"]:
            self.get_logger().warning(f"{feed.robot or 'robot'} episode {status.episode}: "
                                      f"{self.last_accounting['kept']} transitions of {expected} executed steps: "
                                      f"{self.last_accounting['cause']}")
        self.work.put(work)
        self.publish_status()

    def worker(self) -> None:
        """Runs the updates off the ROS thread, so transitions keep arriving while the learner trains."""
        error = self.learner.warm_up_critic()
        self.results.put(Result(b"", self.learner.version, error=error) if error else "waiting")
        while True:
            work = self.work.get()
            if work.steps:
                self.results.put("training")
            for result in self.learner.run(work, self.publish_every):
                self.results.put(result)

    def drain_results(self) -> None:
        """The worker's news (a new state, or a Result) reported from the ROS thread."""
        while not self.results.empty():
            news = self.results.get()
            if isinstance(news, str):
                self.state = news
            else:
                self.report(news)
            self.publish_status()

    def report(self, result: Result) -> None:
        if result.error:
            self.state, self.message = "error", result.error
            self.get_logger().error(result.error)
        elif result.row:
            row = result.row
            self.state, self.last_row, self.message = "waiting", row, ""
            where = f"{row['robot']} " if row["robot"] else ""
            self.get_logger().info(f"{where}episode {row['episode']} ({row['outcome']}): {row['steps']} updates, "
                                   f"version {row['version']}, q_clip_ratio {row.get('q_clip_ratio', np.nan):.2f}")
        for feed in self.feeds:
            if result.trained_through is not None and feed.robot == result.robot:
                feed.trained_through = max(feed.trained_through, result.trained_through)
            if result.weights:
                feed.publish_weights(result.weights, result.version, self.now())

    def publish_status(self) -> None:
        rec = records.LearnerStatus(stamp=self.now(), state=self.state, version=self.learner.version,
                                    updates=self.learner.poco.updates, store_steps=len(self.learner.store),
                                    online_episodes=self.learner.online_episodes,
                                    message=self.message.split("\n")[0], last_episode=self.last_row,
                                    last_accounting=self.last_accounting)
        self.pub_status.publish(String(data=records.encode(rec)))

    def announce_when_connected(self) -> None:
        for feed in self.feeds:
            if not feed.announced and feed.connected():
                feed.announced = True
                feed.publish_weights(self.learner.last_blob, self.learner.version, self.now())
        if all(feed.announced for feed in self.feeds):
            self.announce_timer.cancel()

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_save(self, _req, resp):
        resp.success, resp.message = self.close(), str(self.learner.state_dir)
        return resp

    def close(self) -> bool:
        """Saves the learner (run_node calls this on shutdown), except weights that are not finite."""
        if not self.learner.save():
            self.get_logger().error("not saving the learner: its weights are not finite (last good checkpoint kept)")
            return False
        return True


def main(args=None) -> None:
    raise SystemExit(run_node(LearnerNode, args))


if __name__ == "__main__":
    main()
