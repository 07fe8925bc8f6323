"""The learner node's learning side, without ROS: POCO on a replay store, with everything a restarted learner needs on
disk, so it resumes without losing a transition.

Under `output_dir`: `replay/` holds every online episode, written before any update uses it; `checkpoint/` the newest
actor + critic and `learner_state.json` (how many of those episodes they were trained on: the rest are trained on
after a restart); `learner_log.jsonl` one row per trained episode. Updates that raise or leave non-finite weights
change nothing that is published or saved: the last good weights are re-issued under the next version instead.
An episode's updates run in slices (`publish_every`), each slice's weights a new version, so a learner that trains
while the next episodes run hands the robot fresher weights than the last finished episode's.
"""
from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from robot_rl.core.episodes import tally
from robot_rl.policies import (load_policy, policy_from_bytes, policy_to_bytes, save_policy,
                               selector_from_bytes)
from robot_rl.rl.assembler import EpisodeAssembler, RateMismatch
from robot_rl.rl.config import POCOConfig
from robot_rl.rl.distributed import poco_learner
from robot_rl.rl.offline import offline_episodes
from robot_rl.rl.replay import (Episode, ReplayStore, intervention_segments, load_episodes, normalised_hold,
                                save_episode)

CRITIC_FILE = "critic.safetensors"
STATE_FILE = "learner_state.json"  # how many persisted online episodes the checkpoint has been trained on
LOG_FILE = "learner_log.jsonl"


@dataclass
class Work:
    """The updates owed to one ended episode; `steps` 0 (nothing stored) re-issues the last good weights, with
    `error` saying why when that is a fault to report."""
    episode: int | None  # None: a persisted episode the learner had not trained on before it was restarted
    outcome: str
    steps: int
    intervention_rate: float
    error: str = ""
    robot: str = ""  # the namespace of the robot that ran it ("" : the learner's own)


@dataclass
class Result:
    """What to publish after some work: `weights` (safetensors bytes of `version`), with the log row of a trained
    episode, or the reason the last good weights were re-issued instead. `trained_through` is the episode whose owed
    updates are all done once this is published (None: some are still to come), on `robot`."""
    weights: bytes
    version: int
    row: dict | None = None
    error: str = ""
    trained_through: int | None = None
    robot: str = ""


class ResumableLearner:
    def __init__(self, output_dir: str | Path, prior: str | Path, poco: POCOConfig, seed: int = 0,
                 dataset: str = ""):
        self.out = Path(output_dir)
        self.replay_dir = self.out / "replay"
        self.state_dir = self.out / "checkpoint"  # the newest actor + critic, rewritten after every episode's updates
        self.prior = Path(prior)
        self.resuming = (self.state_dir / CRITIC_FILE).exists()
        policy, self.version = load_policy(self.state_dir if self.resuming else self.prior)
        torch.manual_seed(seed)
        self.poco = poco_learner(policy, poco, seed)  # split across the ranks under torchrun (rl/distributed.py)
        if self.resuming:
            self.poco.load_critic_tensors(load_file(self.state_dir / CRITIC_FILE))
        self.lock = threading.Lock()  # the worker thread updates the actor while the node's thread may save it
        self.store = ReplayStore(policy.spec.horizon, poco.gamma)
        if dataset:
            for episode in offline_episodes(dataset, policy, poco.step_penalty):
                self.store.add(episode)
        resumed = load_episodes(self.replay_dir) if self.replay_dir.exists() else []
        for episode in resumed:
            self._add_to_store(episode)
        self.online_episodes = len(resumed)
        self.trained_episodes = self._trained_episodes(len(resumed)) if self.resuming else 0
        self.untrained = [Work(None, "resumed", len(episode.actions), float(episode.interventions.mean()))
                          for episode in resumed[self.trained_episodes:]]  # persisted; the learner died first
        self.rng = np.random.default_rng(seed)
        self.critic_warmup = 0 if self.resuming or not len(self.store) else poco.critic_pretrain_updates
        # the newest good weights (with the critic that chooses chunks in best_of_n mode), served after a failure
        self.last_blob = policy_to_bytes(self.poco.acting_policy, self.version, self.poco.selector())

    @property
    def policy(self):
        return self.poco.policy

    def summary(self) -> str:
        source = f"resumed from {self.state_dir}" if self.resuming else f"prior {self.prior}"
        return (f"{len(self.store)} steps in the store ({self.online_episodes} online episodes resumed), policy "
                f"version {self.version} ({source}), {self.poco.updates} updates so far")

    def warm_up_critic(self) -> str:
        """Critic-only updates on the offline data (actor frozen); returns why they failed, or ""."""
        try:
            with self.lock:
                self.poco.pretrain_critic(self._sample, self.critic_warmup)
            return ""
        except Exception as err:  # noqa: BLE001 - any failure is reported, the node keeps serving weights
            return f"critic warm-up failed: {err!r}\n{traceback.format_exc()}"

    def take_episode(self, assembler: EpisodeAssembler, start_stamp: float, episode: int, outcome: str,
                     expected: int | None = None, robot: str = "", end_stamp: float | None = None
                     ) -> tuple[Work, dict]:
        """The episode the assembler built since `start_stamp` into the store, persisted first; returns the updates it
        is owed and its accounting (core.episodes.tally) against the `expected` executed actions (the driver's
        count, holds left out; None: unknown). An episode that cannot be built is owed none (the last good weights
        are re-issued); one whose actions came at another rate than the learner's is an error to report."""
        try:
            raw, assembly = assembler.finish(start_stamp, end_stamp)
        except RateMismatch as err:
            refused = len(assembler.ticks_between(start_stamp, end_stamp))
            return (Work(episode, outcome, 0, float("nan"), error=f"episode {episode} not stored: {err}", robot=robot),
                    tally(episode, expected, 0, dropped={"refused_rate_mismatch": refused}))
        accounting = assembly.accounting(episode, expected)
        if raw is None:
            return Work(episode, outcome, 0, float("nan"), robot=robot), accounting
        actions = self.policy.normalizer.normalize_actions(torch.as_tensor(raw.actions)).clamp(-1, 1).numpy()
        stored = Episode(raw.states, actions, raw.rewards, raw.terminated, raw.interventions, images=raw.images,
                         hold_action=normalised_hold(self.policy.spec.action_names, self.policy.normalizer,
                                                     actions[-1]))
        save_episode(stored, self.replay_dir, self.online_episodes)  # persisted before any update uses it
        self.online_episodes += 1
        self._add_to_store(stored)
        return Work(episode, outcome, len(actions), float(raw.interventions.mean()), robot=robot), accounting

    def run(self, work: Work, publish_every: int = 0) -> Iterator[Result]:
        """`utd_ratio` updates per step of one episode in slices of `publish_every` (0: one slice), each slice's weights
        a new version; the last also saves the checkpoint and logs the episode. A failure re-issues the last good
        weights; so does an episode that stored nothing, so a graph waiting for a version newer than its last
        episode's goes on."""
        if work.steps == 0:
            yield Result(self._reissue_last_good(), self.version, error=work.error, trained_through=work.episode,
                         robot=work.robot)
            return
        owed = self.poco.cfg.updates_owed(work.steps)
        size, done, metrics = publish_every or owed, 0, []
        try:
            while done < owed:
                count = min(size, owed - done)
                with self.lock:
                    metrics += self._updates(count)
                done += count
                if done < owed:
                    yield Result(self.last_blob, self.version)
            with self.lock:
                row = self._episode_trained(work, metrics)
        except Exception as err:  # noqa: BLE001
            yield Result(self._reissue_last_good(), self.version, trained_through=work.episode, robot=work.robot,
                         error=f"updates after episode {work.episode} failed; the last good weights stay in "
                               f"service: {err!r}\n{traceback.format_exc()}")
            return
        yield Result(self.last_blob, self.version, row=row, trained_through=work.episode, robot=work.robot)

    def save(self) -> bool:
        with self.lock:
            return self._save()

    def _save(self) -> bool:
        """Critic first, then the actor: a crash in between leaves an older actor with a newer critic, never a
        checkpoint that fails to load. Adam's moments are not kept; they rebuild within a few hundred updates.
        Non-finite weights are never written (False): the checkpoint on disk stays the last good one."""
        if not self._weights_finite():
            return False
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_dir / f".{CRITIC_FILE}.tmp"
        save_file(self.poco.critic_tensors(), tmp)
        tmp.replace(self.state_dir / CRITIC_FILE)
        save_policy(self.poco.acting_policy, self.state_dir, self.version, self.poco.selector())
        tmp = self.state_dir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps({"trained_episodes": self.trained_episodes, "version": self.version}) + "\n")
        tmp.replace(self.state_dir / STATE_FILE)
        return True

    def _sample(self):
        return self.store.sample(self.poco.cfg.batch_size, self.rng)

    def _add_to_store(self, episode: Episode) -> None:
        """An online episode, plus its human-controlled stretches once more as demonstrations (HIL-SERL)."""
        self.store.add(episode)
        for segment in intervention_segments(episode, self.policy.spec.action_names, self.policy.normalizer):
            self.store.add(segment)

    def _updates(self, count: int) -> list[dict]:
        """`count` updates, then a new version of the weights (raises on non-finite weights, before any is kept)."""
        metrics = [self.poco.update(self._sample()).__dict__ for _ in range(count)]
        if not self._weights_finite():
            raise FloatingPointError("non-finite actor or critic weights after the updates")
        self.version += 1
        self.last_blob = policy_to_bytes(self.poco.acting_policy, self.version, self.poco.selector())
        return metrics

    def _episode_trained(self, work: Work, metrics: list[dict]) -> dict:
        """All of an episode's updates are done: the checkpoint and the log row."""
        self.trained_episodes += 1
        self._save()
        summary = {k: float(np.nanmean([m[k] for m in metrics])) for k in metrics[0]}
        row = {"robot": work.robot, "episode": work.episode, "outcome": work.outcome, "steps": work.steps,
               "intervention_rate": work.intervention_rate, "store_steps": len(self.store),
               "updates": self.poco.updates, "version": self.version, **summary}
        with (self.out / LOG_FILE).open("a") as f:
            f.write(json.dumps(row) + "\n")
        return row

    def _reissue_last_good(self) -> bytes:
        """The last good weights under the next version number."""
        policy, _ = policy_from_bytes(self.last_blob)
        selector = selector_from_bytes(self.last_blob, policy)
        with self.lock:
            self.version += 1
            self.last_blob = policy_to_bytes(policy, self.version, selector)
            return self.last_blob

    def _weights_finite(self) -> bool:
        modules = (self.poco.policy, self.poco.acting_policy, self.poco.critic, self.poco.critic_target)
        return all(torch.isfinite(p).all() for m in modules for p in m.parameters())

    def _trained_episodes(self, persisted: int) -> int:
        """Online episodes the checkpoint has been trained on (all of them for a checkpoint without the record)."""
        path = self.state_dir / STATE_FILE
        return min(persisted, json.loads(path.read_text())["trained_episodes"]) if path.exists() else persisted
