"""Record noisy scripted-expert demonstrations in simulation as a LeRobot v3 dataset (no ROS).

    python -m robot_rl.data.collect_sim --task pick_lift --episodes 20 --noise 0.5 --root runs/data/pick_lift

Every control step (15 Hz) becomes one frame: the state before the step, the executed EE-delta action
(m, rad axis-angle, absolute gripper width; names EE_SPACE_NAMES), reward 1.0 once the task succeeds, done on
success or at the step limit. Failed episodes are kept; the outcome goes into the episodes' `success` column.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from robot_rl.core.types import EE_SPACE_NAMES
from robot_rl.core.state import ENVIRONMENT_STATE_NAMES, STATE_NAMES, observation_state
from robot_rl.data.lerobot import LeRobotWriter
from robot_rl.core.types import CONTROL_HZ, TASK_MAX_STEPS
from robot_rl.sim.expert import expert_chunk
from robot_rl.sim.panda_sim import PandaSim
from robot_rl.sim.tasks import TASKS

CHUNK = 5   # expert actions executed open loop before re-planning (as a POCO-style chunked policy would)


def sim_state(sim: PandaSim, environment_state: bool = False) -> np.ndarray:
    """The shared state vector of the simulated robot (+ the privileged environment state)."""
    pos, quat = sim.ee_pose()
    return observation_state(pos, quat, sim.joint_positions(), sim.task_state() if environment_state else None)


def collect_demos(task: str, episodes: int, noise: float, seed: int, root: str | Path,
                  cameras: Sequence[str] = (), image_size: int = 64, max_steps: int | None = None,
                  environment_state: bool = False, scene: int | None = None) -> dict[str, Any]:
    """Run `episodes` noisy expert episodes (seeds seed, seed+1, ...) into the dataset at `root` (appending
    if it exists) and return a summary with the success rate. `environment_state` appends the object/goal state
    (ENVIRONMENT_STATE_NAMES) to `observation.state`, for state-only sim policies. `scene` records every episode on
    that one scene (the bridge's `fixed_scene`), each with its own noise seed."""
    sim = PandaSim(task, cameras={cam: (image_size, image_size) for cam in cameras}, render=bool(cameras))
    state_names = STATE_NAMES + ENVIRONMENT_STATE_NAMES if environment_state else STATE_NAMES
    writer = LeRobotWriter(root, CONTROL_HZ, state_names, EE_SPACE_NAMES, cameras,
                           (image_size, image_size, 3), robot_type="panda_sim")
    substeps = round(1.0 / (CONTROL_HZ * sim.physics_dt))
    limit = max_steps or TASK_MAX_STEPS[task]
    successes, frames, indices = 0, 0, []
    progress = tqdm(range(episodes), desc=f"{task} demos", unit="ep")
    try:
        with writer:
            for episode in progress:
                episode_seed = seed + episode
                sim.reset(episode_seed if scene is None else scene)
                rng = np.random.default_rng([episode_seed, 1])
                steps, success = 0, False
                while not (success or steps >= limit):
                    for delta in expert_chunk(sim.task_state(), CHUNK, rng, noise):
                        state = sim_state(sim, environment_state)
                        images = {cam: sim.render(cam) for cam in cameras}
                        q, width = sim.apply_ee_delta(delta)
                        sim.set_joint_target(q, width)
                        sim.step(substeps)
                        steps += 1
                        success = sim.success()
                        done = success or steps >= limit
                        executed = np.r_[delta[:6], width]
                        writer.add_frame(state, executed, float(success), done, False, images, task=task)
                        if done:
                            break
                indices.append(writer.save_episode(success=success))
                successes += success
                frames += steps
                progress.set_postfix(success=f"{successes / (episode + 1):.0%}")
    finally:
        sim.close()
    return {"task": task, "root": str(root), "episodes": episodes, "successes": successes,
            "success_rate": successes / max(episodes, 1), "frames": frames, "episode_indices": indices,
            "noise": noise, "seed": seed, "scene": scene}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, default="reach")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--cameras", nargs="*", default=[], help="e.g. front wrist")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--environment-state", action="store_true", help="append object/goal state to the state")
    parser.add_argument("--scene", type=int, default=None, help="every episode on this scene (default: the scene of "
                                                                "each episode's seed)")
    args = parser.parse_args()
    summary = collect_demos(args.task, args.episodes, args.noise, args.seed, args.root, args.cameras,
                            args.image_size, args.max_steps, args.environment_state, args.scene)
    print(f"{summary['task']}: success rate {summary['success_rate']:.1%} ({summary['successes']}/"
          f"{summary['episodes']}), {summary['frames']} frames -> {summary['root']}")


if __name__ == "__main__":
    main()
