"""Offline-to-online fine-tuning on any gymnasium env with a dict observation ("state", optionally
"environment_state"), without ROS (same learner classes as the learner node). `to_env_action` maps one raw policy
action to the env's action space (identity by default; the Panda envs take `sim.gym_env.normalise_ee_delta`).

Each chunk of h actions is executed open-loop in full, then the policy re-plans (POCO's setting). After
`start_training` env steps, each episode is followed by `utd_ratio` learner updates per env step it took.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from robot_rl.core.types import EVAL_SEED
from robot_rl.rl.config import POCOConfig
from robot_rl.rl.poco import POCOLearner
from robot_rl.rl.replay import Episode, ReplayStore, normalised_hold


ActionAdapter = Callable[[np.ndarray], np.ndarray]


@dataclass
class OnlineConfig:
    env_steps: int = 20_000
    start_training: int = 0           # env steps collected before the first update (the store holds the demos)
    eval_every: int = 2_000
    eval_episodes: int = 10
    seed: int = 0


@dataclass
class Curve:
    env_steps: list[int] = field(default_factory=list)
    outcomes: list[np.ndarray] = field(default_factory=list)  # per evaluation: success of episode EVAL_SEED + i
    metrics: list[dict] = field(default_factory=list)

    @property
    def success(self) -> list[float]:
        return [float(o.mean()) for o in self.outcomes]


def policy_state(obs: dict, spec) -> np.ndarray:
    """The policy's state vector from a gym observation (robot state, + environment state if the policy uses it)."""
    return np.r_[obs["state"], obs["environment_state"]] if spec.environment_state else obs["state"]


def run_episode(env: gym.Env, learner: POCOLearner, seed: int, step_penalty: float,
                to_env_action: ActionAdapter = np.asarray) -> tuple[Episode, bool]:
    """One episode with chunks executed in full; returns it in the store's (normalised) form. `to_env_action` maps
    one raw policy action to the env's action (the Panda envs take normalised EE deltas); success is the env's
    `info["success"]`."""
    policy = learner.policy
    h = policy.spec.horizon
    obs, _ = env.reset(seed=seed)
    states, actions, rewards = [policy_state(obs, policy.spec)], [], []
    success = terminated = done = False
    while not done:
        chunk = learner.act({"state": torch.as_tensor(states[-1])[None]})  # (1, H, D) normalised
        raw = policy.normalizer.unnormalize_actions(chunk)[0].numpy()
        for k in range(h):
            obs, reward, terminated, truncated, info = env.step(to_env_action(raw[k]))
            states.append(policy_state(obs, policy.spec))
            actions.append(chunk[0, k].numpy())
            rewards.append(reward + step_penalty)
            success, done = bool(info.get("success", False)), terminated or truncated
            if done:
                break
    # a terminal failure (e.g. the object dropped out of the workspace) is terminal too: it is not bootstrapped
    episode = Episode(np.asarray(states), np.asarray(actions), np.asarray(rewards, dtype=np.float32),
                      bool(terminated), success=success,
                      hold_action=normalised_hold(policy.spec.action_names, policy.normalizer, actions[-1]))
    return episode, success


def evaluate(env: gym.Env, learner: POCOLearner, episodes: int, to_env_action: ActionAdapter = np.asarray
             ) -> np.ndarray:
    """Success (bool) of each episode on the seeds EVAL_SEED + i: the same episodes at every evaluation, for every
    method and training seed, so that differences are paired."""
    return np.array([run_episode(env, learner, EVAL_SEED + i, 0.0, to_env_action)[1] for i in range(episodes)])


def finetune(env: gym.Env, learner: POCOLearner, store: ReplayStore, cfg: OnlineConfig,
             to_env_action: ActionAdapter = np.asarray) -> Curve:
    rng = np.random.default_rng(cfg.seed)
    curve = Curve()
    steps, episode_index, next_eval = 0, 0, 0
    recent: list[dict] = []
    learner.pretrain_critic(lambda: store.sample(learner.cfg.batch_size, rng), learner.cfg.critic_pretrain_updates)
    with tqdm(total=cfg.env_steps, desc=f"{learner.cfg.mode} online", unit="step") as bar:
        while steps < cfg.env_steps:
            if steps >= next_eval:
                curve.env_steps.append(steps)
                curve.outcomes.append(evaluate(env, learner, cfg.eval_episodes, to_env_action))
                curve.metrics.append(_mean(recent))
                recent = []
                bar.set_postfix(success=f"{curve.success[-1]:.2f}")
                next_eval += cfg.eval_every
            episode, _ = run_episode(env, learner, cfg.seed + episode_index, learner.cfg.step_penalty, to_env_action)
            store.add(episode)
            episode_index += 1
            n = len(episode.actions)
            for _ in range(learner.cfg.updates_owed(n) if steps + n > cfg.start_training else 0):
                recent.append(learner.update(store.sample(learner.cfg.batch_size, rng)).__dict__)
            steps += n
            bar.update(n)
    curve.env_steps.append(steps)
    curve.outcomes.append(evaluate(env, learner, cfg.eval_episodes, to_env_action))
    curve.metrics.append(_mean(recent))
    return curve


def _mean(rows: list[dict]) -> dict:
    if not rows:
        return {}
    columns = {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]}
    return {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in columns.items()}


def check_env(env: gym.Env, spec) -> None:
    """Refuse an env whose observations do not give the policy its state vector (ValueError naming both sizes)."""
    spaces = getattr(env.observation_space, "spaces", {})
    keys = ("state", "environment_state") if spec.environment_state else ("state",)
    if missing := [k for k in keys if k not in spaces]:
        raise ValueError(f"the env's observations lack {missing}, which this policy reads")
    size = sum(int(np.prod(spaces[k].shape)) for k in keys)
    if size != spec.state_dim:
        raise ValueError(f"the env's {' + '.join(keys)} has {size} values, the policy's state {spec.state_dim}")


def finetune_checkpoint(checkpoint: str | Path, dataset: str | Path | None, env: gym.Env, cfg: POCOConfig,
                        online: OnlineConfig, out: str | Path, to_env_action: ActionAdapter = np.asarray) -> Curve:
    """POCO (or a baseline) from a saved prior, with a dataset's demonstrations in the replay store; writes the
    fine-tuned policy (version + 1) and `curve.jsonl` (success and learner metrics per evaluation) to `out`."""
    from robot_rl.policies import load_policy, save_policy
    from robot_rl.rl.offline import offline_episodes

    torch.manual_seed(online.seed)
    policy, version = load_policy(checkpoint)
    check_env(env, policy.spec)
    learner = POCOLearner(policy, cfg, seed=online.seed)
    store = ReplayStore(policy.spec.horizon, cfg.gamma)
    for episode in offline_episodes(dataset, policy, cfg.step_penalty) if dataset else ():
        store.add(episode)
    curve = finetune(env, learner, store, online, to_env_action)
    save_policy(learner.acting_policy, Path(out), version + 1, learner.selector())
    rows = [{"env_steps": s, "success": r, **m} for s, r, m in zip(curve.env_steps, curve.success, curve.metrics)]
    (Path(out) / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return curve
