"""Reward node: computes a reward record per control step from the live streams and publishes it on `reward`.

Sources are selected by the `source` parameter; this build has `sim` (the simulator's success predicate).
"""
from __future__ import annotations

from pydantic import BaseModel, Field
from rclpy.node import Node
from std_msgs.msg import String

from robot_rl.rewards.sim_success import SimSuccessReward
from robot_rl.ros import contract, records
from robot_rl.ros.node_runtime import declare_config, run_node


class RewardConfig(BaseModel, extra="forbid"):
    source: str = Field("sim", pattern="^(sim)$")
    success_reward: float = 1.0
    step_penalty: float = -0.01


CONFIG = RewardConfig


class RewardNode(Node):
    def __init__(self):
        super().__init__("reward")
        self.cfg = declare_config(self, RewardConfig)
        self.compute = SimSuccessReward(self.cfg.success_reward, self.cfg.step_penalty)
        self.episode: int | None = None
        self.start_stamp = 0.0
        self.step = 0
        self.pub = self.create_publisher(String, contract.REWARD.name, contract.REWARD.qos)
        self.create_subscription(String, contract.EPISODE_STATUS.name, self.on_status, contract.EPISODE_STATUS.qos)
        self.create_subscription(String, contract.TASK_STATE.name, self.on_task_state, contract.TASK_STATE.qos)

    def on_status(self, msg: String) -> None:
        try:
            status = records.decode(msg.data, records.EpisodeStatus)
        except records.RecordError as err:
            self.get_logger().error(f"ignored episode status: {err}")
            return
        if status.state == "running":
            if status.episode != self.episode:
                self.episode, self.start_stamp, self.step = status.episode, status.stamp, 0
        else:
            self.episode = None

    def on_task_state(self, msg: String) -> None:
        if self.episode is None:
            return
        try:
            rec = records.decode(msg.data, records.TaskState)
        except records.RecordError as err:
            self.get_logger().error(f"ignored task state: {err}", throttle_duration_sec=1.0)
            return
        if rec.stamp < self.start_stamp:
            return  # from before this episode's reset
        reward, terms, success = self.compute(rec.state)
        out = records.RewardRecord(stamp=rec.stamp, episode=self.episode, step=self.step, reward=reward, terms=terms,
                                   success=success, done=success, source=self.cfg.source)
        self.pub.publish(String(data=records.encode(out)))
        self.step += 1


def main(args=None) -> None:
    raise SystemExit(run_node(RewardNode, args))


if __name__ == "__main__":
    main()
