"""Scripted-expert success rates through the same EE-delta path the ROS bridge uses.

    python -m robot_rl.sim.evaluate --tasks reach push pick_lift peg_insert --episodes 50 --noise 0 0.4
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from robot_rl.core.types import CONTROL_HZ, TASK_MAX_STEPS
from robot_rl.sim.expert import expert_chunk
from robot_rl.sim.panda_sim import PandaSim
from robot_rl.sim.tasks import TASKS



def run_expert_episode(sim: PandaSim, seed: int, noise: float = 0.0, horizon: int = 8,
                       max_steps: int | None = None) -> tuple[bool, int]:
    """Reset with `seed`, execute expert chunks (all `horizon` actions, then re-plan); (success, control steps)."""
    sim.reset(seed)
    rng = np.random.default_rng([seed, 1])
    substeps = round(1.0 / (CONTROL_HZ * sim.physics_dt))
    limit = max_steps or TASK_MAX_STEPS[sim.task_name]
    steps = 0
    while steps < limit:
        for delta in expert_chunk(sim.task_state(), horizon, rng, noise):
            q, width = sim.apply_ee_delta(delta)
            sim.set_joint_target(q, width)
            sim.step(substeps)
            steps += 1
            if sim.success():
                return True, steps
            if steps >= limit:
                break
    return False, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.4])
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--variant", default="primitive")
    args = parser.parse_args()
    for task in args.tasks:
        sim = PandaSim(task, variant=args.variant, render=False)
        for noise in args.noise:
            start = time.perf_counter()
            results = [run_expert_episode(sim, seed, noise, args.horizon) for seed in range(args.episodes)]
            wins = [steps for ok, steps in results if ok]
            mean_steps = float(np.mean(wins)) if wins else float("nan")
            print(f"{task:11s} noise={noise:.2f} success={len(wins) / len(results):6.1%} "
                  f"mean_steps_on_success={mean_steps:5.1f} ({time.perf_counter() - start:.1f} s)", flush=True)
        sim.close()


if __name__ == "__main__":
    main()
