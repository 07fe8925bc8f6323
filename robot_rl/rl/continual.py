"""Continual learning on the sim tasks, LifeLong-RFT's protocol (after LIBERO/LOTUS) scaled to this machine.

Stage 0 trains the base tasks; then each new task arrives alone with `new_fraction` of a base task's demos plus
`replay_episodes` replayed demos of every task seen before; after every stage every seen task is evaluated in the
sim (fixed seeds). Both methods share the stage-0 SFT model, the demos, the replay picks and the seeds:

    sft  — supervised fine-tuning on each stage's data (the paper's SFT + replay baseline)
    rft  — stage 0: GRPO with MDPR on the base data; new stages: a short SFT warm-up, then GRPO with MDPR

Success matrix s[q, k] (after stage q, task k; learned at stage q_k). With T the tasks:
    FWT = mean_k s[q_k, k]
    NBT = mean over tasks with later stages of  mean_{q > q_k} (s[q_k, k] − s[q, k])      (forgetting, lower better)
    AUC = mean_k mean({s[q_k, k]} ∪ {s[q, k] : q > q_k})
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from robot_rl.core.types import EE_SPACE_NAMES
from robot_rl.core.yaml_config import load_yaml_model
from robot_rl.data.collect_sim import collect_demos, sim_state
from robot_rl.rl.lifelong_rft import (Demos, RFTConfig, SFTConfig, demo_normalizer, load_demos, malformed_rate,
                                      reinforcement_finetune, supervised_finetune)
from robot_rl.policies.normalizer import Normalizer
from robot_rl.core.types import CONTROL_HZ, EVAL_SEED, TASK_MAX_STEPS
from robot_rl.sim.expert import MAX_STEP_M, MAX_STEP_RAD
from robot_rl.sim.robot import MAX_GRIPPER_WIDTH
from robot_rl.sim.tasks import TASKS

# EE-delta action limits of the sim expert: position (m), rotation (rad axis-angle), gripper width (m)
ACTION_LOW = np.array([-MAX_STEP_M] * 3 + [-MAX_STEP_RAD] * 3 + [0.0])
ACTION_HIGH = np.array([MAX_STEP_M] * 3 + [MAX_STEP_RAD] * 3 + [MAX_GRIPPER_WIDTH])


class ContinualConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_tasks: list[str] = Field(default_factory=lambda: ["reach", "push"])
    new_tasks: list[str] = Field(default_factory=lambda: ["pick_lift", "peg_insert"])
    base_episodes: int = Field(50, ge=1)
    new_fraction: float = Field(0.2, gt=0, le=1)
    replay_episodes: int = Field(5, ge=0)
    demo_noise: float = Field(0.1, ge=0)
    eval_episodes: int = Field(50, ge=1)
    stage_sft_steps: int = Field(400, ge=0)
    rft_warmup_sft_steps: int = Field(400, ge=0)

    def model_post_init(self, _context) -> None:
        for task in self.base_tasks + self.new_tasks:
            if task not in TASKS:
                raise ValueError(f"unknown task {task!r}; sim tasks: {list(TASKS)}")


class RFTFileConfig(BaseModel):
    """config/rft.yaml."""

    model_config = ConfigDict(extra="forbid")
    policy: dict = Field(default_factory=dict, description="PolicySpec fields but type/action_names/state_dim")
    sft: SFTConfig = Field(default_factory=SFTConfig)
    rft: RFTConfig = Field(default_factory=RFTConfig)
    continual: ContinualConfig = Field(default_factory=ContinualConfig)

    @classmethod
    def load(cls, path: str | Path) -> RFTFileConfig:
        return load_yaml_model(cls, path)


def task_demos(task: str, episodes: int, noise: float, seed: int, root: Path, horizon: int) -> Demos:
    """Noisy scripted-expert demos of one task with the environment state (collect_sim), as chunked samples."""
    if not (root / "meta" / "info.json").exists():
        collect_demos(task, episodes, noise, seed, root, environment_state=True)
    return load_demos(root, horizon)


@torch.no_grad()
def evaluate_policy(policy, task: str, episodes: int, seed: int = EVAL_SEED) -> np.ndarray:
    """Per-episode success (bool, episode i on sim seed `seed` + i) of `policy` on `task`: chunks executed open loop
    (spec.execute_steps), then replan. The episodes run side by side (one sim each), so every replanning is one
    batched policy call."""
    from robot_rl.sim.panda_sim import PandaSim

    spec = policy.spec
    size = spec.image_size
    sims = [PandaSim(task, cameras={c: (size, size) for c in spec.cameras}, render=bool(spec.cameras))
            for _ in range(episodes)]
    substeps = round(1.0 / (CONTROL_HZ * sims[0].physics_dt))
    limit = TASK_MAX_STEPS[task]
    generator = torch.Generator().manual_seed(seed)
    success = np.zeros(episodes, bool)
    try:
        for i, sim in enumerate(sims):
            sim.reset(seed + i)
        steps = 0
        while steps < limit and not success.all():
            active = np.flatnonzero(~success)
            obs = {"state": torch.as_tensor(np.stack([sim_state(sims[i], environment_state=True) for i in active])),
                   "instruction": [task] * len(active)}
            if spec.cameras:
                obs["images"] = {c: torch.as_tensor(np.stack([sims[i].render(c) for i in active])).permute(0, 3, 1, 2)
                                 for c in spec.cameras}
            chunks = policy.sample(obs, 1, generator)[:, 0].numpy()
            for t in range(min(spec.execute_steps, limit - steps)):
                for chunk, i in zip(chunks, active):
                    if success[i]:
                        continue
                    q, width = sims[i].apply_ee_delta(chunk[t])
                    sims[i].set_joint_target(q, width)
                    sims[i].step(substeps)
                    success[i] = sims[i].success()
            steps += spec.execute_steps
    finally:
        for sim in sims:
            sim.close()
    return success


def continual_metrics(matrix: np.ndarray, learned_at: list[int]) -> dict[str, float]:
    """FWT, NBT, AUC from s[q, k] (NaN where task k was not yet seen) and each task's stage q_k. All three are linear
    in s, so applied to one evaluation episode's outcomes they give that episode's share (used for paired intervals)."""
    fwt, nbt, auc = [], [], []
    for k, q_k in enumerate(learned_at):
        first, later = matrix[q_k, k], matrix[q_k + 1:, k]
        fwt.append(first)
        if len(later):
            nbt.append(float(np.mean(first - later)))
        auc.append(float(np.mean(np.r_[first, later])))
    return {"fwt": float(np.mean(fwt)), "nbt": float(np.mean(nbt)) if nbt else float("nan"),
            "auc": float(np.mean(auc))}


def stage_datasets(demos: dict[str, Demos], cfg: ContinualConfig, seed: int) -> list[Demos]:
    """Stage 0: all base demos. Stage j: the j-th new task's demos + `replay_episodes` of each earlier task."""
    rng = np.random.default_rng(seed)
    stages = [Demos.concat([demos[t] for t in cfg.base_tasks])]
    seen = list(cfg.base_tasks)
    for task in cfg.new_tasks:
        replay = []
        for old in seen:
            episodes = np.unique(demos[old].episode)
            picks = rng.choice(episodes, size=min(cfg.replay_episodes, len(episodes)), replace=False)
            replay.append(demos[old].episodes(picks))
        stages.append(Demos.concat([demos[task]] + [r for r in replay if len(r)]))
        seen.append(task)
    return stages


def run_method(method: str, base_policy, stages: list[Demos], file_cfg: RFTFileConfig, seed: int) -> dict:
    """Train one method through every stage from the shared stage-0 SFT policy; evaluate after each stage. Returns the
    per-episode outcomes s[q, k, i] (NaN before task k is learned), their mean matrix, FWT / NBT / AUC, the GRPO
    histories and the malformed share of sampled completions (τ of training, and greedy) after every stage."""
    cfg = file_cfg.continual
    tasks = cfg.base_tasks + cfg.new_tasks
    learned_at = [0] * len(cfg.base_tasks) + list(range(1, len(cfg.new_tasks) + 1))
    outcomes = np.full((len(stages), len(tasks), cfg.eval_episodes), np.nan)
    policy = copy.deepcopy(base_policy)
    histories, malformed = [], []
    for q, data in enumerate(stages):
        rft_cfg = file_cfg.rft.model_copy(update={"seed": seed + q})
        if q > 0:
            steps = cfg.stage_sft_steps if method == "sft" else cfg.rft_warmup_sft_steps
            sft_cfg = file_cfg.sft.model_copy(update={"steps": steps, "seed": seed + q})
            supervised_finetune(policy, data, sft_cfg, desc=f"{method} stage {q} SFT")
        if method == "rft":
            histories.append(reinforcement_finetune(policy, data, rft_cfg, desc=f"rft stage {q} GRPO"))
        malformed += [malformed_rate(policy, data, tau, seed=seed + q) for tau in (file_cfg.rft.temperature, 0.0)]
        for k, task in enumerate(tasks):
            if learned_at[k] <= q:
                outcomes[q, k] = evaluate_policy(policy, task, cfg.eval_episodes)
        print(f"[{method}] after stage {q}: " + ", ".join(f"{t} {np.mean(outcomes[q, k]):.2f}"
                                                         for k, t in enumerate(tasks) if learned_at[k] <= q),
              flush=True)
    matrix = outcomes.mean(axis=2)
    per_episode = [continual_metrics(outcomes[..., i], learned_at) for i in range(cfg.eval_episodes)]
    return {"outcomes": outcomes, "matrix": matrix, "metrics": continual_metrics(matrix, learned_at),
            "episode_metrics": {m: np.array([e[m] for e in per_episode]) for m in ("fwt", "nbt", "auc")},
            "histories": histories, "malformed_rate": float(np.mean(malformed)), "policy": policy}


def prepare_protocol(file_cfg: RFTFileConfig, workdir: str | Path, seed: int = 0) -> tuple[list[Demos], object]:
    """The stage datasets and the shared stage-0 SFT policy of one seed. Demos (collect_sim, action space
    EE_SPACE_NAMES) and the base policy are kept under `workdir` and reused while their settings are unchanged."""
    from robot_rl.policies import PolicySpec, build_policy, load_policy, save_policy
    from robot_rl.policies.action_tokenizers import fit_tokenizer
    from robot_rl.policies.tokenized import TokenizedOptions

    cfg = file_cfg.continual
    workdir = Path(workdir)
    horizon = int(file_cfg.policy.get("horizon", 5))
    new_episodes = max(1, round(cfg.new_fraction * cfg.base_episodes))
    demos = {}
    for i, task in enumerate(cfg.base_tasks + cfg.new_tasks):
        episodes = cfg.base_episodes if task in cfg.base_tasks else new_episodes
        demos[task] = task_demos(task, episodes, cfg.demo_noise, 1000 * (i + 1) + seed,
                                 workdir / f"demos_{task}_{episodes}_s{seed}", horizon)
    stages = stage_datasets(demos, cfg, seed)
    base = stages[0]

    key = json.dumps({"policy": file_cfg.policy, "sft": file_cfg.sft.model_dump(), "seed": seed,
                      "demos": [cfg.base_tasks, cfg.base_episodes, cfg.demo_noise]}, sort_keys=True)
    cached = workdir / f"base_{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    if (cached / "config.json").exists():
        return stages, load_policy(cached)[0]
    torch.manual_seed(seed)
    # actions normalised by the robot's limits, not the base demos' range: a later task may use what the base tasks
    # never did (pick_lift closes the gripper)
    stats = demo_normalizer(base)
    normalizer = Normalizer.from_stats(ACTION_LOW, ACTION_HIGH, stats.state_mean, stats.state_std)
    options = TokenizedOptions.model_validate(file_cfg.policy.get("tokenized", {}))
    chunks = normalizer.normalize_actions(torch.as_tensor(base.chunks)).numpy()
    tokenizer = fit_tokenizer(options.tokenizer, chunks)
    policy_fields = {k: v for k, v in file_cfg.policy.items() if k != "tokenized"}
    spec = PolicySpec(type="tokenized", action_names=list(EE_SPACE_NAMES),
                      state_dim=base.states.shape[1], environment_state=True, **policy_fields,
                      tokenized=options.model_copy(update={"tokenizer": tokenizer}).model_dump())
    base_policy = build_policy(spec, normalizer)
    supervised_finetune(base_policy, base, file_cfg.sft.model_copy(update={"seed": seed}), desc="stage 0 SFT")
    save_policy(base_policy, cached, 0)
    return stages, base_policy


def run_protocol(file_cfg: RFTFileConfig, workdir: str | Path, seed: int = 0,
                 methods: tuple[str, ...] = ("sft", "rft")) -> dict:
    """Every method from the seed's shared base policy (prepare_protocol)."""
    stages, base_policy = prepare_protocol(file_cfg, workdir, seed)
    cfg = file_cfg.continual
    results = {m: run_method(m, base_policy, stages, file_cfg, seed) for m in methods}
    results["tasks"] = cfg.base_tasks + cfg.new_tasks
    results["stage_sizes"] = [len(s) for s in stages]
    return results
