"""POCO paid by DEG+ through the ROS graph (real processes, real DDS, real MuJoCo rendering for the reward's camera):
the demos relabelled by the graph's own reward source, the learner's weights evaluated in the gym on the same scene."""
import json

import numpy as np
import pytest

from robot_rl import bringup
from robot_rl.data.collect_sim import collect_demos
from robot_rl.rl.replay import load_episodes

pytestmark = pytest.mark.graph


SCENE = 3   # bench.deg_vs_sparse's reach scene


def fixed_scene_success(checkpoint, episodes: int) -> np.ndarray:
    """Success of `episodes` gym episodes on SCENE, each sampling noise seeded by its index (paired across
    checkpoints); the gym applies the robot's safety steps as the bridge does."""
    import torch

    from robot_rl.policies import load_policy
    from robot_rl.sim.gym_env import PandaTaskEnv, normalise_ee_delta

    policy, _ = load_policy(checkpoint)
    env = PandaTaskEnv("reach", max_steps=100)
    wins = []
    for i in range(episodes):
        torch.manual_seed(1000 + i)
        obs, _ = env.reset(seed=SCENE)
        done = success = False
        while not done:
            state = torch.as_tensor(np.r_[obs["state"], obs["environment_state"]], dtype=torch.float32)[None]
            for action in policy.sample({"state": state})[0, 0].numpy():
                obs, _, terminated, truncated, info = env.step(normalise_ee_delta(action))
                success, done = bool(info["success"]), terminated or truncated
                if done:
                    break
        wins.append(success)
    env.close()
    return np.array(wins)


def test_a_deg_plus_graph_learner_lifts_success_on_one_scene(tmp_path):
    """sim_deg_poco end to end on one fixed reach scene: scripted demos with the front camera, a small DEG model
    trained on them, a weak BC prior, the demos relabelled by the graph's own DEG+ source (`robot-rl reward
    relabel`), then ten online episodes through the graph (bridge, policy, DEG+ reward node, continuous learner,
    episode manager). The rise is measured on the weights the graph trained, in the gym on the same scene with 40
    paired episodes (measured twice, once beside two busy processes: prior 0.12 -> 1.00, 2.5 to 3 min). What this
    checks is the loop: demos rewarded as the graph rewards, DEG+ records reaching the learner, weights coming back.
    Whether DEG beats the sparse reward is the claim bench's question (bench.deg_vs_sparse: warm-started, both rise
    alike)."""
    import torch

    from robot_rl import commands
    from robot_rl.rewards.deg_tools import train_deg
    from robot_rl.rl.pretrain import pretrain

    torch.set_num_threads(1)
    demos, model, prior, out = (tmp_path / name for name in ("demos", "deg", "prior", "learner"))
    collect_demos("reach", 10, noise=0.3, seed=0, root=demos, cameras=["front"], image_size=64,
                  environment_state=True, scene=SCENE, max_steps=100)
    train_deg(demos, "front", model, ["latent"], encoder_steps=100, guidance_steps=100)
    pretrain(demos, dict(type="flow", horizon=5, execute_steps=5, hidden_dim=128, depth=2, flow_steps=5), 150,
             prior, batch_size=128, seed=0)
    sets = [f"reward.deg.model_path={model}", "mujoco_bridge.fixed_scene=true", f"mujoco_bridge.seed={SCENE}",
            "mujoco_bridge.camera_width=64", "mujoco_bridge.camera_height=64"]
    assert commands.main(["reward", "relabel", "--graph", "config/graphs/sim_deg_poco.yaml",
                          *(arg for s in sets for arg in ("--set", s)), "--dataset", str(demos),
                          "--out", str(tmp_path / "demos_deg")]) == 0
    episodes = 10
    proc = bringup.start_graph("config/graphs/sim_deg_poco.yaml", "deg_learn_ci", sets + [
        f"policy.checkpoint={prior}", f"learner.checkpoint={prior}", f"learner.dataset={tmp_path / 'demos_deg'}",
        f"learner.output_dir={out}", "learner.poco.num_candidates=16", "learner.poco.warmup_updates=200",
        "learner.poco.critic_hidden=128", "learner.poco.critic_depth=2", "episode_manager.max_steps=100",
        f"episode_manager.num_episodes={episodes}", f"episode_manager.results_path={tmp_path / 'episodes.jsonl'}"])
    assert proc.wait(timeout=900) == 0, proc.logs

    log = [json.loads(line) for line in (out / "learner_log.jsonl").read_text().splitlines() if line.strip()]
    assert len(log) == episodes and all(np.isfinite(r["critic_loss"]) for r in log)
    theta = 10.0   # config/reward_deg.yaml
    for episode in load_episodes(out / "replay"):   # every online step paid by DEG+: dense terms, θ at success only
        assert np.ptp(episode.rewards[:-1]) > 0
        assert (episode.rewards[-1] > theta / 2) == episode.success and episode.rewards[:-1].max() < theta / 2
    before, after = fixed_scene_success(prior, 40), fixed_scene_success(out / "checkpoint", 40)
    assert after.mean() >= before.mean() + 0.3, (before.mean(), after.mean(), [r["outcome"] for r in log])
