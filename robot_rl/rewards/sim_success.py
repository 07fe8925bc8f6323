"""Sim reward source: the bridge task's success predicate, plus a constant step penalty (POCO uses -0.01)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SimSuccessReward:
    success_reward: float = 1.0
    step_penalty: float = -0.01

    def __call__(self, task_state: dict) -> tuple[float, dict[str, float], bool]:
        """reward, named terms, success."""
        success = bool(task_state["success"])
        terms = {"success": self.success_reward if success else 0.0, "step_penalty": self.step_penalty}
        return sum(terms.values()), terms, success
