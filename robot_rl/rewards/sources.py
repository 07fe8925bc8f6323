"""Reward sources behind one interface, chosen by the reward node's `source` parameter.

    sim         the simulator's success predicate (privileged task state) + step penalty
    human       the operator's verdict (episode/mark_success | mark_failure, teleop buttons) + step penalty
    classifier  a small image success classifier; its confidence goes into every record
    deg         DEG dense reward along per-episode guidance (reward-free): γΦ(s′) − Φ(s), Φ from the pointer
    deg+        DEG + θ·success, success from `success_source` (sim, human or classifier)

A source sees one `RewardInput` per control step and returns a `RewardStep` with every term named. Sources that need
pixels say so (`camera`), and sources with per-episode work (DEG guidance) do it in `prepare`, which the node runs
off the control path before the episode's first reward.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from robot_rl.rewards.params import ClassifierParams, DEGSourceParams, SourceConfig
from robot_rl.rewards.sim_success import SimSuccessReward


@dataclass
class RewardInput:
    stamp: float
    image: np.ndarray | None = None        # (H, W, 3) uint8 from the source's camera
    task_state: dict | None = None         # sim only: privileged state with "success"
    operator: str | None = None            # "success" / "failure" once the operator has judged the episode


@dataclass
class RewardStep:
    reward: float
    terms: dict[str, float] = field(default_factory=dict)
    success: bool = False
    done: bool = False


class RewardSource(ABC):
    name = ""
    reads_pixels = False   # scores the camera image itself (others tick on frames without reading them)

    def prepare(self, first: RewardInput, task: str) -> None:
        """Per-episode setup from the first observation (may be slow; never called inside the control loop)."""

    def reset(self) -> None:
        """Start of an episode, after `prepare`."""

    @abstractmethod
    def step(self, obs: RewardInput) -> RewardStep:
        """The reward for one control step."""


class SimSource(RewardSource):
    name = "sim"

    def __init__(self, success_reward: float, step_penalty: float):
        self.compute = SimSuccessReward(success_reward, step_penalty)

    def step(self, obs: RewardInput) -> RewardStep:
        if obs.task_state is None:
            raise ValueError("the sim source needs the simulator's task state (sim/task_state)")
        reward, terms, success = self.compute(obs.task_state)
        return RewardStep(reward, terms, success, success)


class HumanSource(RewardSource):
    """The operator's judgement: success/failure from the episode manager's mark services or the teleop buttons."""

    name = "human"

    def __init__(self, success_reward: float, step_penalty: float):
        self.success_reward, self.step_penalty = success_reward, step_penalty

    def step(self, obs: RewardInput) -> RewardStep:
        success = obs.operator == "success"
        terms = {"success": self.success_reward if success else 0.0, "step_penalty": self.step_penalty}
        return RewardStep(sum(terms.values()), terms, success, obs.operator is not None)


class ClassifierSource(RewardSource):
    name = "classifier"
    reads_pixels = True

    def __init__(self, params: ClassifierParams, success_reward: float, step_penalty: float):
        from robot_rl.rewards.classifier import load_classifier

        if not params.model_path:
            raise ValueError("source classifier needs classifier.model_path (train one with "
                             "`robot-rl reward train-classifier`)")
        self.p, self.success_reward, self.step_penalty = params, success_reward, step_penalty
        self.model = load_classifier(params.model_path)
        self.run = 0

    def reset(self) -> None:
        self.run = 0

    def step(self, obs: RewardInput) -> RewardStep:
        if obs.image is None:
            raise ValueError("the classifier source needs a camera image")
        confidence = self.model.confidence(obs.image)
        self.run = self.run + 1 if confidence >= self.p.threshold else 0
        success = self.run >= self.p.consecutive
        terms = {"success": self.success_reward if success else 0.0, "step_penalty": self.step_penalty,
                 "confidence": confidence}
        return RewardStep(terms["success"] + self.step_penalty, terms, success,
                          success and self.p.terminate_on_success)


class DEGSource(RewardSource):
    """DEG (reward-free) or, with `success`, DEG+ = DEG + θ·success."""

    reads_pixels = True

    def __init__(self, params: DEGSourceParams, success: RewardSource | None = None):
        from robot_rl.rewards.deg import DEGReward, load_encoder
        from robot_rl.rewards.deg_tools import model_calibration
        from robot_rl.rewards.guidance import load_provider

        if not params.model_path:
            raise ValueError("source deg needs deg.model_path (train one with `robot-rl deg train`)")
        self.p = params
        self.encoder, meta = load_encoder(params.model_path)
        self.provider = load_provider(params.model_path, params.guidance, self.encoder, meta)
        self.reward = DEGReward(params, model_calibration(meta, params.guidance))
        self.success = success
        self.name = "deg+" if success else "deg"
        self.guidance = None

    def prepare(self, first: RewardInput, task: str) -> None:
        if first.image is None:
            raise ValueError("DEG guidance needs the episode's first camera image")
        self.guidance = self.provider.make_guidance(first.image, task).latents
        if self.success:
            self.success.prepare(first, task)

    def reset(self) -> None:
        if self.guidance is None:
            raise RuntimeError("DEG source reset before its guidance was prepared")
        self.reward.reset(self.guidance)
        if self.success:
            self.success.reset()

    def step(self, obs: RewardInput) -> RewardStep:
        from robot_rl.rewards.deg import encode

        if obs.image is None:
            raise ValueError("the DEG source needs a camera image")
        s = self.reward.step(encode(self.encoder, obs.image)[0])
        terms = {"coarse": s.coarse, "fine": s.fine, "goal": s.goal, "pointer": float(s.pointer),
                 "progress": s.progress, "similarity": s.similarity}
        reward, success, done = s.reward, False, self.p.terminate_at_end and s.progress == 1.0
        if self.success:
            inner = self.success.step(obs)
            success = inner.success
            terms["success"] = self.p.theta * float(success)
            terms.update({f"success_{k}": v for k, v in inner.terms.items() if k == "confidence"})
            reward += terms["success"]
            done = done or inner.done
        return RewardStep(reward, terms, success, done)


def make_source(cfg: SourceConfig) -> RewardSource:
    def base(name: str) -> RewardSource:
        if name == "sim":
            return SimSource(cfg.success_reward, cfg.step_penalty)
        if name == "human":
            return HumanSource(cfg.success_reward, cfg.step_penalty)
        return ClassifierSource(cfg.classifier, cfg.success_reward, cfg.step_penalty)

    if cfg.source == "deg":
        return DEGSource(cfg.deg)
    if cfg.source == "deg+":
        return DEGSource(cfg.deg, base(cfg.success_source))
    return base(cfg.source)
