"""Behaviour cloning of a chunk policy from a LeRobot v3 dataset (the offline stage before POCO).

The normaliser comes from the dataset (action min/max -> [-1, 1], state mean/std), samples are
(state_t [+ camera frames_t], a_t..a_{t+H-1}) holding the arm past an episode's end (data.lerobot.chunk_dataset), and
the loss is the policy's own per-sample training loss. Writes the checkpoint, a loss curve PNG and TensorBoard scalars when tensorboard exists.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from robot_rl.core.state import has_environment_state
from robot_rl.data.lerobot import LeRobotReader, chunk_dataset
from robot_rl.policies import PolicySpec, build_policy, save_policy
from robot_rl.policies.base import ChunkPolicy
from robot_rl.policies.encoders import resize_frames
from robot_rl.policies.normalizer import Normalizer
from robot_rl.rl.poco import observation_batch


STATE_STD_FLOOR = 0.01  # m, rad or quaternion units: below this a state dimension is treated as nearly constant


def normalizer_from_dataset(reader: LeRobotReader) -> Normalizer:
    frames = [reader.episode(i) for i in range(reader.num_episodes)]
    actions = np.concatenate([f["action"] for f in frames])
    states = np.concatenate([f["state"] for f in frames])
    # A floor on the state std: dimensions that barely move in the demos (the EE orientation of a top-down expert,
    # std ~1e-4) would otherwise be blown up to unit scale, and the policy would key on their noise.
    return Normalizer.from_stats(actions.min(0), actions.max(0), states.mean(0), np.maximum(states.std(0), STATE_STD_FLOOR))


def pretrain(dataset: str | Path, spec_overrides: dict, steps: int, out_dir: str | Path, batch_size: int = 256,
             lr: float = 3e-4, seed: int = 0) -> ChunkPolicy:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    reader = LeRobotReader(dataset)
    spec = PolicySpec(action_names=reader.action_names, state_dim=len(reader.state_names),
                      environment_state=has_environment_state(reader.state_names), **spec_overrides)
    policy = build_policy(spec, normalizer_from_dataset(reader))
    data = chunk_dataset(reader, spec.horizon, spec.cameras)
    states = torch.as_tensor(data.states)
    images = {cam: resize_frames(frames, spec.image_size) for cam, frames in data.images.items()}
    actions = policy.normalizer.normalize_actions(torch.as_tensor(data.actions))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=1e-6)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = _tensorboard(out / "tensorboard")
    losses = []
    policy.train()
    for step in (bar := tqdm(range(steps), desc=f"BC pretrain ({spec.type})", unit="step")):
        idx = rng.integers(0, len(states), size=batch_size)
        loss = policy.loss(observation_batch(states[idx], {cam: f[idx] for cam, f in images.items()}),
                           actions[idx]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            if writer is not None:
                writer.add_scalar("bc/loss", np.mean(losses[-50:]), step)
    if writer is not None:
        writer.close()
    policy.eval()
    save_policy(policy, out, version=0)
    (out / "pretrain_log.json").write_text(json.dumps({"dataset": str(dataset), "steps": steps,
                                                       "final_loss": float(np.mean(losses[-100:]))}))
    plot_curve(losses, out / "bc_loss.png")
    return policy


def plot_curve(losses: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    window = max(1, len(losses) // 100)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(smooth)
    ax.set_xlabel("update")
    ax.set_ylabel("BC loss (per-sample policy loss)")
    ax.set_yscale("log")
    ax.set_title("behaviour cloning")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _tensorboard(logdir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(logdir))


def bc_on_episodes(policy: ChunkPolicy, episodes, steps: int, batch_size: int = 128, lr: float = 3e-3,
                   seed: int = 0) -> ChunkPolicy:
    """Behaviour cloning on replay-store episodes (actions already normalised), for toy tasks and tests."""
    from robot_rl.rl.replay import ReplayStore

    torch.manual_seed(seed)
    store = ReplayStore(policy.spec.horizon, 0.99)
    for episode in episodes:
        store.add(episode)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    policy.train()
    for _ in range(steps):
        batch = store.sample(batch_size, rng)
        loss = policy.loss({"state": torch.as_tensor(batch.states)}, torch.as_tensor(batch.actions)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return policy.eval()
