"""Image success classifier: p(success | frame) from a small CNN trained here on frames labelled while recording.

Labels come from a LeRobot v3 dataset: a frame is a success frame when its recorded reward is positive (the sim
recorder and the operator's success key both write that), every other frame is a failure frame. Success frames are
rare (an episode ends at success), so batches are drawn half from each class, with random-shift and colour
augmentation. The confidence of every prediction goes into the reward record, so false positives can be audited.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from robot_rl.rewards.deg import augment, to_tensor

WEIGHTS_FILE = "classifier.safetensors"
META_FILE = "classifier.json"


class SuccessNet(nn.Module):
    """(B, 3, 64, 64) in [0, 1] → (B,) success logits."""

    def __init__(self, width: int = 16):
        super().__init__()
        layers, ch = [], 3
        for out in (width, 2 * width, 2 * width, 4 * width):
            layers += [nn.Conv2d(ch, out, 3, 2, 1), nn.GroupNorm(4, out), nn.ReLU()]
            ch = out
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(ch * 16, 1)
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1)).squeeze(-1)


class SuccessClassifier:
    def __init__(self, net: SuccessNet, meta: dict):
        self.net, self.meta = net.eval(), meta

    @torch.no_grad()
    def confidence(self, frames: np.ndarray) -> float | np.ndarray:
        """p(success) of one (H, W, 3) frame (a float) or of (N, H, W, 3) frames (an array)."""
        p = torch.sigmoid(self.net(to_tensor(frames))).numpy()
        return float(p[0]) if np.asarray(frames).ndim == 3 else p

    def save(self, root: str | Path) -> None:
        from safetensors.torch import save_file

        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(root / WEIGHTS_FILE))
        (root / META_FILE).write_text(json.dumps({"width": self.net.width, **self.meta}, indent=2))


def load_classifier(root: str | Path) -> SuccessClassifier:
    from safetensors.torch import load_file

    root = Path(root)
    if not (root / META_FILE).exists() or not (root / WEIGHTS_FILE).exists():
        raise FileNotFoundError(f"{root}: not a success classifier (needs {META_FILE} and {WEIGHTS_FILE})")
    meta = json.loads((root / META_FILE).read_text())
    net = SuccessNet(meta["width"])
    net.load_state_dict(load_file(str(root / WEIGHTS_FILE)))
    return SuccessClassifier(net, meta)


def labelled_frames(dataset: str | Path, camera: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames (N, H, W, 3), labels (N,) bool, episode index (N,)) from a LeRobot dataset."""
    from robot_rl.data.lerobot import LeRobotReader

    reader = LeRobotReader(dataset)
    if camera not in reader.cameras:
        raise ValueError(f"{dataset} has no camera {camera!r} (it has {reader.cameras})")
    frames, labels, episodes = [], [], []
    for i in range(reader.num_episodes):
        ep = reader.episode(i, images=True)
        frames.append(ep[f"images.{camera}"])
        labels.append(ep["reward"] > 0)
        episodes.append(np.full(len(ep["reward"]), i))
    return np.concatenate(frames), np.concatenate(labels), np.concatenate(episodes)


def train_classifier(frames: np.ndarray, labels: np.ndarray, steps: int = 1500, batch: int = 64, seed: int = 0,
                     meta: dict | None = None) -> tuple[SuccessClassifier, list[float]]:
    """Balanced-batch binary cross-entropy on augmented frames."""
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"need both success and failure frames, got {len(pos)} success / {len(neg)} failure")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_all = to_tensor(frames)
    net = SuccessNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    target = torch.cat([torch.ones(batch // 2), torch.zeros(batch - batch // 2)])
    losses = []
    for _ in tqdm(range(steps), desc="success classifier", unit="step"):
        idx = np.r_[rng.choice(pos, batch // 2), rng.choice(neg, batch - batch // 2)]
        loss = F.binary_cross_entropy_with_logits(net(augment(x_all[idx])), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    info = {"success_frames": int(len(pos)), "failure_frames": int(len(neg)), "steps": steps, **(meta or {})}
    return SuccessClassifier(net, info), losses
