"""Claim experiment: DEG+ (dense guidance reward + θ·success) against sparse success alone, same learner and budget.

Setting (a small CPU stand-in for the paper's drawer-open, 300k steps): `reach` on one fixed scene (gym
PandaTaskEnv, seed `--scene`), learned from scratch. The DEG reward reads one camera (`--camera`, `--image-size`):
  1. noisy scripted-expert episodes of the scene are recorded as a LeRobot v3 dataset with video; a second set,
     recorded with other noise seeds, is held out for the diagnostics,
  2. `robot-rl deg train` trains the contrastive encoder and the guidance provider and calibrates δ_c, δ_f on
     its own held-out share of the demos,
  3. diagnostics on the held-out set: return along ordered vs shuffled frames, matched/mismatched ROC AUC,
  4. per seed, both rewards train the same learner with the same budget; sparse: r = θ·1[success];
     DEG+: DEG's payment of Φ (`--payment`: potential γΦ(s′) − Φ(s) or level (1 − γ)Φ(s′)) + θ·1[success].
     With DEG the learner also observes the pointer fraction m/(K − 1).
     A third arm, `oracle`, is a reference and not a method: the same payment of the privileged potential
     Φ = α·(1 − d/d₀) (d the TCP's distance to the goal, d₀ at reset; α as DEG's). It shows what the learner
     makes of a dense reward that resolves the last centimetres, so that a miss can be put on the reward or on the
     learner.

Learners: `sac` (default, from scratch), the soft actor-critic of robot_rl.rl.sac on the robot state, acting on the
translation only (the reach expert does not rotate); `poco`, POCO offline-to-online on a flow chunk policy
warm-started by `--bc-steps` of behaviour cloning on the demos (no pointer in its observation): the demos enter
its store rewarded as the arm rewards (DEG over their own frames for deg+) and anchor its actor. `--poco-mode bc`
runs the same without the reward-weighted term (the control: what the anchor alone does).
Evaluation: `--eval-episodes` episodes every `--eval-every` env steps and at the end. The scene is fixed and the env
deterministic, so the sac policy is evaluated as its mean action plus a fixed noise (`--eval-noise`, an own noise
seed per episode); POCO samples its flow policy. Guidance is made from each episode's first frame and cached.

    python -m bench.deg_vs_sparse [--env-steps 6000] [--seeds 0 1 2] [--learner sac|poco] [--payment potential]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")   # the cameras render headless

from bench.report import machine_line, markdown_table, write_results, write_section  # noqa: E402
from robot_rl.core.stats import mean_interval, wilson  # noqa: E402

TASK = "reach"
ARMS = ("sparse", "deg+")   # the claim
REFERENCE = "oracle"        # privileged distance shaping, reported beside the claim
TRANSLATION = 3   # sac acts on the EE translation; rotation held, gripper open
RATE = (0.0, 1.0)


def make_env(args, camera: bool):
    from robot_rl.sim.gym_env import PandaTaskEnv

    size = (args.image_size, args.image_size)
    return PandaTaskEnv(TASK, max_steps=args.max_steps, cameras={args.camera: size} if camera else None)


def record_demos(root: Path, args, episodes: int, first: int) -> float:
    """Noisy scripted expert on the fixed scene (noise seeds `first`..), a LeRobot v3 dataset; its success rate."""
    from robot_rl.core.state import STATE_NAMES
    from robot_rl.core.types import CONTROL_HZ, EE_SPACE_NAMES
    from robot_rl.data.lerobot import LeRobotWriter
    from robot_rl.sim.expert import expert_chunk
    from robot_rl.sim.gym_env import normalise_ee_delta

    env = make_env(args, camera=True)
    wins = 0
    with LeRobotWriter(root, CONTROL_HZ, STATE_NAMES, EE_SPACE_NAMES, [args.camera],
                       (args.image_size, args.image_size, 3), robot_type="panda_sim") as writer:
        for ep in range(first, first + episodes):
            obs, info = env.reset(seed=args.scene)
            rng = np.random.default_rng([args.scene, ep])
            done, reached_at, t = False, None, 0
            while not done:
                for delta in expert_chunk(info["task_state"], 5, rng, args.demo_noise):
                    state, image = obs["state"], obs[args.camera]
                    obs, _, _, truncated, info = env.step(normalise_ee_delta(delta))
                    if info["success"] and reached_at is None:
                        reached_at = t
                    done = truncated or (reached_at is not None and t - reached_at >= args.settle_steps)
                    writer.add_frame(state, np.r_[delta[:6], delta[6]], float(info["success"]), done, False,
                                     {args.camera: image}, task=TASK)
                    t += 1
                    if done:
                        break
            success = reached_at is not None
            writer.save_episode(success=success)
            wins += success
    env.close()
    return wins / episodes


class DEGPlusReward:
    """The DEG part of DEG+ for the gym loop: frozen encoder, guidance cached by first frame, calibrated thresholds."""

    def __init__(self, model: Path, guidance: str, gamma: float, goal_weight: float, payment: str):
        from robot_rl.rewards.deg import DEGParams, DEGReward, load_encoder
        from robot_rl.rewards.deg_tools import model_calibration
        from robot_rl.rewards.guidance import load_provider

        self.encoder, meta = load_encoder(model)
        self.provider = load_provider(model, guidance, self.encoder, meta)
        self.reward = DEGReward(DEGParams(gamma=gamma, goal_weight=goal_weight, payment=payment),
                                model_calibration(meta, guidance))
        self.cache: dict[str, object] = {}

    def reset(self, first_frame: np.ndarray) -> None:
        key = hashlib.sha1(first_frame.tobytes()).hexdigest()
        if key not in self.cache:
            self.cache[key] = self.provider.make_guidance(first_frame, TASK).latents
        self.reward.reset(self.cache[key])

    def step(self, frame: np.ndarray):
        from robot_rl.rewards.deg import encode

        return self.reward.step(encode(self.encoder, frame)[0])


def goal_distance(info: dict) -> float:
    """The TCP's distance to the reach goal (privileged: only the oracle reference uses it)."""
    state = info["task_state"]
    return float(np.linalg.norm(np.subtract(state["ee_pos"], state["goal"])))


# ---- the exploring learner (from scratch) ------------------------------------------------------------------------
def run_sac(arm: str, model: Path, args, seed: int) -> dict:
    """One soft actor-critic run; returns evaluation outcomes and per-episode training stats."""
    import torch
    from tqdm import tqdm

    from robot_rl.rewards.deg import pay
    from robot_rl.rl.sac import SACAgent, SACConfig

    torch.manual_seed(seed)
    from robot_rl.rewards.params import DEGParams

    dense = DEGPlusReward(model, args.guidance, args.gamma, args.goal_weight, args.payment) if arm == "deg+" else None
    alpha = DEGParams().alpha
    env = make_env(args, camera=dense is not None)
    cfg = SACConfig(gamma=args.gamma, seed_steps=args.seed_steps)
    obs_dim = env.observation_space["state"].shape[0] + (dense is not None)
    agent = SACAgent(obs_dim, TRANSLATION, cfg, seed=seed)

    def observe(obs, progress: float) -> np.ndarray:
        return np.r_[obs["state"], progress] if dense else obs["state"]

    def episode(env_step: int, std: float | None, noise_seed: int | None = None):
        if noise_seed is not None:
            agent.rng = np.random.default_rng(noise_seed)
        obs, info = env.reset(seed=args.scene)
        if dense:
            dense.reset(obs[args.camera])
        d0, phi = goal_distance(info), 0.0   # the oracle's potential α(1 − d/d₀), 0 at reset
        states, actions, rewards, parts = [observe(obs, 0.0)], [], [], []
        done = success = terminated = False
        while not done:
            a = agent.act(states[-1], env_step + len(actions), std)
            obs, _, terminated, truncated, info = env.step(np.r_[a, np.zeros(3), 1.0])
            success, done = bool(info["success"]), terminated or truncated
            r, progress = args.theta * float(success), 0.0
            if arm == REFERENCE:
                phi_next = alpha * (1 - goal_distance(info) / d0)
                r, phi = r + pay(phi, phi_next, args.gamma, args.payment), phi_next
            if dense:
                s = dense.step(obs[args.camera])
                r, progress = r + s.reward, s.progress
                parts.append((s.coarse, s.fine, s.pointer))
            states.append(observe(obs, progress))
            actions.append(a)
            rewards.append(r)
        return np.asarray(states), np.asarray(actions), np.asarray(rewards, np.float32), success, terminated, parts

    def evaluate(index: int) -> list[int]:
        saved = agent.rng
        outcomes = [int(episode(args.env_steps, args.eval_noise, noise_seed=10_000 * (seed + 1) + 100 * index + i)[3])
                    for i in range(args.eval_episodes)]
        agent.rng = saved
        return outcomes

    curve, train_log, steps, next_eval = {"env_steps": [], "outcomes": []}, [], 0, 0
    with tqdm(total=args.env_steps, desc=f"sac {arm} seed {seed}", unit="step") as bar:
        while steps < args.env_steps:
            if steps >= next_eval:
                curve["env_steps"].append(steps)
                curve["outcomes"].append(evaluate(len(curve["env_steps"])))
                next_eval += args.eval_every
            states, actions, rewards, success, terminated, parts = episode(steps, None)
            agent.replay.add_episode(states, actions, rewards, terminated)
            for t in range(steps, steps + len(actions)):
                if t >= cfg.seed_steps and t % cfg.update_every == 0:
                    agent.update()
            steps += len(actions)
            bar.update(len(actions))
            recent = [t["success"] for t in train_log[-9:]] + [success]
            bar.set_postfix(eval=f"{np.mean(curve['outcomes'][-1]):.2f}", train=f"{np.mean(recent):.1f}",
                            pointer=parts[-1][2] if parts else "–")
            train_log.append({"success": success, "steps": len(actions), "return": float(rewards.sum()),
                              "pointer": parts[-1][2] if parts else None,
                              "coarse": float(sum(p[0] for p in parts)), "fine": float(sum(p[1] for p in parts))})
    curve["env_steps"].append(steps)
    curve["outcomes"].append(evaluate(len(curve["env_steps"])))
    env.close()
    return {"curve": curve, "train": train_log}


# ---- POCO (warm-started comparison) ------------------------------------------------------------------------------
def demo_episodes(demos: Path, policy, dense, args) -> list:
    """The demos as the learner loads them (robot_rl.rl.offline), rewarded as the arm rewards online steps
    (θ·1[success], plus DEG's payment over the demo's own frames for deg+) and cut at the first success, where an
    online episode ends."""
    from robot_rl.data.lerobot import LeRobotReader
    from robot_rl.rl.offline import offline_episodes
    from robot_rl.rl.replay import Episode, normalised_hold

    reader, episodes = LeRobotReader(demos), []
    for i, demo in enumerate(offline_episodes(str(demos), policy, step_penalty=0.0)):
        success = demo.rewards > 0          # recorded as 1[success] after each action
        T = int(np.argmax(success)) + 1 if success.any() else len(success)
        rewards = args.theta * success[:T].astype(np.float32)
        if dense is not None:   # the frame after action t is the observation before t + 1 (the last: repeated)
            frames = reader.episode(i, images=True)[f"images.{args.camera}"]
            dense.reset(frames[0])
            rewards += np.array([dense.step(frames[min(t + 1, len(frames) - 1)]).reward for t in range(T)], np.float32)
        episodes.append(Episode(demo.states[:T + 1], demo.actions[:T], rewards, bool(success[:T].any()),
                                source="offline",
                                hold_action=normalised_hold(policy.spec.action_names, policy.normalizer,
                                                            demo.actions[T - 1])))
    return episodes


def run_poco(arm: str, model: Path, demos: Path, args, seed: int) -> dict:
    """POCO offline-to-online on a flow chunk policy (robot state only): BC warm start of `--bc-steps` on the demos,
    the demos in the store (rewarded as the arm rewards) as the actor's anchor and the critic's warm-up data."""
    import torch

    from robot_rl.data.lerobot import LeRobotReader
    from robot_rl.policies import PolicySpec
    from robot_rl.rl.poco import POCOConfig, POCOLearner
    from robot_rl.rl.pretrain import pretrain
    from robot_rl.rl.replay import Episode, ReplayStore, normalised_hold
    from robot_rl.sim.gym_env import normalise_ee_delta

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    reader = LeRobotReader(demos)
    spec = PolicySpec(type="flow", action_names=reader.action_names, state_dim=len(reader.state_names),
                      horizon=5, execute_steps=5, hidden_dim=128, depth=2, flow_steps=5)
    policy = pretrain(demos, spec.model_dump(exclude={"action_names", "state_dim", "environment_state"}),
                      args.bc_steps, Path(args.out_abs) / f"bc_seed{seed}", batch_size=128, seed=seed)
    cfg = POCOConfig(mode=args.poco_mode, batch_size=128, num_candidates=16, warmup_updates=200, critic_hidden=128,
                     critic_depth=2, step_penalty=0.0, gamma=args.gamma)
    learner = POCOLearner(policy, cfg, seed=seed)
    store = ReplayStore(horizon=spec.horizon, gamma=cfg.gamma)
    dense = DEGPlusReward(model, args.guidance, args.gamma, args.goal_weight, args.payment) if arm == "deg+" else None
    for demo in demo_episodes(demos, policy, dense, args):
        store.add(demo)
    learner.pretrain_critic(lambda: store.sample(cfg.batch_size, rng), cfg.critic_pretrain_updates)
    env = make_env(args, camera=dense is not None)

    def episode(train: bool):
        obs, _ = env.reset(seed=args.scene)
        if dense and train:
            dense.reset(obs[args.camera])
        states, actions, rewards, success, done, pointer = [obs["state"]], [], [], False, False, None
        while not done:
            chunk = learner.act({"state": torch.as_tensor(obs["state"])[None]})
            raw = policy.normalizer.unnormalize_actions(chunk)[0].numpy()
            for k in range(spec.horizon):
                obs, _, terminated, truncated, info = env.step(normalise_ee_delta(raw[k]))
                success, done = bool(info["success"]), terminated or truncated
                r = args.theta * float(success)
                if dense and train:
                    s = dense.step(obs[args.camera])
                    r, pointer = r + s.reward, s.pointer
                states.append(obs["state"])
                actions.append(chunk[0, k].numpy())
                rewards.append(r)
                if done:
                    break
        if train:
            store.add(Episode(np.asarray(states), np.asarray(actions), np.asarray(rewards, np.float32), success,
                              hold_action=normalised_hold(policy.spec.action_names, policy.normalizer, actions[-1])))
        return success, len(actions), pointer, float(np.sum(rewards))

    curve, train_log, steps, next_eval = {"env_steps": [], "outcomes": []}, [], 0, 0
    while True:
        if steps >= next_eval or steps >= args.env_steps:
            curve["env_steps"].append(steps)
            curve["outcomes"].append([int(episode(train=False)[0]) for _ in range(args.eval_episodes)])
            next_eval += args.eval_every
        if steps >= args.env_steps:
            break
        success, n, pointer, ret = episode(train=True)
        train_log.append({"success": success, "steps": n, "pointer": pointer, "return": ret})
        for _ in range(n):
            learner.update(store.sample(cfg.batch_size, rng))
        steps += n
    env.close()
    return {"curve": curve, "train": train_log}


def run_one(arm: str, seed: int, model: Path, demos: Path, args) -> dict:
    """One (reward arm, seed) run with the chosen learner, in a worker process of its own."""
    import torch

    torch.set_num_threads(1)
    return run_sac(arm, model, args, seed) if args.learner == "sac" else run_poco(arm, model, demos, args, seed)


# ---- diagnostics, report -----------------------------------------------------------------------------------------
def last_frame_match_by_distance(model: Path, args, marks=(0.20, 0.10, 0.05, 0.03, 0.01)) -> list[dict]:
    """How finely the reward sees the end: along a straight 1 cm-per-step approach to the goal on the bench's scene,
    the cosine of the frame to the guidance's last latent and the best-matching guidance frame, at the steps nearest
    to each distance in `marks` (m). A reward that cannot tell 4 cm from 1 cm cannot lead into the 2 cm goal."""
    import torch
    import torch.nn.functional as F

    from robot_rl.rewards.deg import encode

    reward = DEGPlusReward(model, args.guidance, args.gamma, args.goal_weight, args.payment)
    env = make_env(args, camera=True)
    obs, info = env.reset(seed=args.scene)
    guidance = F.normalize(reward.provider.make_guidance(obs[args.camera], TASK).latents.float(), dim=-1)
    trace = []
    for _ in range(args.max_steps):
        offset = np.subtract(info["task_state"]["goal"], info["task_state"]["ee_pos"])
        sims = guidance @ F.normalize(encode(reward.encoder, obs[args.camera])[0].float(), dim=-1)
        trace.append((float(np.linalg.norm(offset)), float(sims[-1]), int(torch.argmax(sims))))
        if trace[-1][0] < 0.005:
            break
        obs, _, _, _, info = env.step(np.r_[np.clip(offset / 0.01, -1, 1), np.zeros(3), 1.0])
    env.close()
    rows = []
    for mark in marks:
        dist, sim, frame = min(trace, key=lambda t: abs(t[0] - mark))
        rows.append({"distance_m": dist, "last_frame_cosine": sim, "best_frame": frame, "frames": len(guidance)})
    return rows


def diagnose(model: Path, heldout: Path, args) -> dict:
    from robot_rl.rewards.deg_tools import diagnostics, expert_videos, plot_diagnostics

    videos, task = expert_videos(heldout, args.camera)
    result = diagnostics(model, videos, task, args.guidance, shuffles=5)
    plot_diagnostics(result, Path(args.out_abs) / f"diagnostics_{args.guidance}.png")
    return {"ordered_return": result["mean_return"], "shuffled_return": result["mean_shuffled_return"],
            "match_roc_auc": result["roc_auc"], "coarse_threshold": result["thresholds_used"][0],
            "fine_threshold": result["thresholds_used"][1], "episodes": len(videos),
            "final_pointer": float(np.mean([e["pointer"][-1] for e in result["episodes"]]))}


def time_diffusion_guidance(demos: Path, model: Path, args) -> dict:
    """Train the diffusion frame generator briefly and time one guidance clip for a new episode's first frame."""
    import torch

    from robot_rl.rewards.deg import load_encoder
    from robot_rl.rewards.deg_tools import expert_videos
    from robot_rl.rewards.guidance import DiffusionGuidance

    encoder, meta = load_encoder(model)
    videos, task = expert_videos(demos, args.camera)
    start = time.monotonic()
    provider, _ = DiffusionGuidance.train(encoder, videos, meta["num_frames"], args.diffusion_steps)
    trained = time.monotonic() - start
    env = make_env(args, camera=True)
    first = env.reset(seed=args.scene + 1)[0][args.camera]   # a scene no demo was recorded on
    env.close()
    start = time.monotonic()
    with torch.no_grad():
        clip = provider.make_guidance(first, task)
    return {"train_s": trained, "clip_s": time.monotonic() - start, "frames": len(clip.frames),
            "sample_steps": provider.sample_steps, "train_steps": args.diffusion_steps}


def long_rows(results: dict, diag: dict, approach: list[dict], args) -> list[dict]:
    rows = []
    for arm, runs in results.items():
        for seed, r in zip(args.seeds, runs):
            base = {"method": arm, "seed": seed}
            outcomes = r["curve"]["outcomes"]
            rows.append(dict(base, metric="final_success", value=float(np.mean(outcomes[-1]))))
            rows += [dict(base, metric="success", env_steps=s, value=float(np.mean(o)))
                     for s, o in zip(r["curve"]["env_steps"], outcomes)]
            rows += [dict(base, metric="outcome", env_steps=r["curve"]["env_steps"][-1], episode=i, value=v)
                     for i, v in enumerate(outcomes[-1])]
            rows.append(dict(base, metric="training_success",
                             value=float(np.mean([t["success"] for t in r["train"]]))))
    rows += [{"method": "deg+", "seed": args.encoder_seed, "metric": k, "value": v} for k, v in diag.items()]
    rows += [{"method": "deg+", "seed": args.encoder_seed, "metric": "last_frame_cosine", "distance_m": a["distance_m"],
              "best_frame": a["best_frame"], "frames": a["frames"], "value": a["last_frame_cosine"]}
             for a in approach]
    return rows


def plot(results: dict, path: Path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for arm, colour in (("sparse", "tab:gray"), ("deg+", "tab:blue"), (REFERENCE, "tab:green")):
        if arm not in results:
            continue
        runs = results[arm]
        steps = runs[0]["curve"]["env_steps"]
        per_seed = np.array([[np.mean(o) for o in r["curve"]["outcomes"]] for r in runs])
        bands = [mean_interval(per_seed[:, k], RATE) for k in range(len(steps))] if len(runs) > 1 else \
            [wilson(int(np.sum(o)), len(o)) for o in runs[0]["curve"]["outcomes"]]
        axes[0].plot(steps, per_seed.mean(0), color=colour, marker="o", ms=3, label=f"{arm} (mean of {len(runs)})")
        axes[0].fill_between(steps, [b.low for b in bands], [b.high for b in bands], color=colour, alpha=0.15)
        for i, r in enumerate(runs):
            cum = np.cumsum([t["steps"] for t in r["train"]])
            w = min(10, len(cum))
            rate = np.convolve([t["success"] for t in r["train"]], np.ones(w) / w, mode="same")
            axes[1].plot(cum, rate, color=colour, alpha=0.6, label=arm if i == 0 else None)
    axes[0].set(xlabel="env steps", ylabel="evaluation success", ylim=(-0.05, 1.05),
                title=f"{TASK}, scene {args.scene}: {args.learner}, 95 % band over seeds")
    axes[0].legend()
    axes[1].set(xlabel="env steps", ylabel="success (10-episode mean)", ylim=(-0.05, 1.05),
                title="training episodes")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learner", choices=["sac", "poco"], default="sac")
    parser.add_argument("--env-steps", type=int, default=6000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", choices=[*ARMS, REFERENCE],
                        help=f"reward arms to run (default: {' '.join(ARMS)}, and {REFERENCE} with sac; the report "
                             f"and docs need both claim arms)")
    parser.add_argument("--scene", type=int, default=3)
    parser.add_argument("--camera", default="front")
    parser.add_argument("--image-size", type=int, default=96, help="camera and encoder resolution (multiple of 16)")
    parser.add_argument("--demos", type=int, default=10, help="demos to train on (a fifth calibrate δ_c, δ_f)")
    parser.add_argument("--heldout-demos", type=int, default=5, help="demos for the diagnostics")
    parser.add_argument("--demo-noise", type=float, default=0.3)
    parser.add_argument("--settle-steps", type=int, default=10,
                        help="expert steps recorded after the goal is first reached (the guidance then ends in the "
                             "settled state; 0: at the step before first contact with the 2 cm goal)")
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--gamma", type=float, default=0.99, help="the learner's discount and the shaping's γ")
    parser.add_argument("--theta", type=float, default=10.0)
    parser.add_argument("--goal-weight", type=float, default=1.0,
                        help="κ of DEG's goal term (robot_rl.rewards.params; 0: the paper's two terms)")
    parser.add_argument("--payment", choices=["potential", "level"], default="potential",
                        help="how DEG+ and the oracle pay Φ (robot_rl.rewards.params.DEGParams.payment)")
    parser.add_argument("--eval-noise", type=float, default=0.1, help="sac: N(0, σ²) on the mean action in evaluation")
    parser.add_argument("--seed-steps", type=int, default=1000, help="sac: uniform random actions first")
    parser.add_argument("--bc-steps", type=int, default=150, help="poco: BC warm start on the demos (≥ 1)")
    parser.add_argument("--poco-mode", default="poco", choices=["poco", "bc", "best_of_n", "actor_gradient"],
                        help="poco: the learner's mode (bc: the same run with the actor trained on the anchor only)")
    parser.add_argument("--guidance", default="latent", choices=["latent", "nearest"])
    parser.add_argument("--encoder-steps", type=int, default=1000)
    parser.add_argument("--encoder-seed", type=int, default=0)
    parser.add_argument("--diffusion-steps", type=int, default=0, help="time a diffusion guidance clip (0: skip)")
    parser.add_argument("--name", default="deg_vs_sparse", help="results file, PNG and docs section")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel, one core each")
    parser.add_argument("--out", default="runs/bench/deg_vs_sparse")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    args = parser.parse_args(argv)
    args.arms = args.arms or [*ARMS] + ([REFERENCE] if args.learner == "sac" else [])
    if args.learner == "poco" and REFERENCE in args.arms:
        parser.error(f"--learner poco: the {REFERENCE} arm needs the goal's position, which the demos' replay "
                     f"episodes do not have; run --arms {' '.join(ARMS)}")
    if args.learner == "poco" and args.bc_steps < 1:
        parser.error("--learner poco needs --bc-steps ≥ 1 (the warm start)")

    import torch

    from robot_rl.rewards.deg_tools import train_deg

    torch.set_num_threads(1)
    out = ROOT / args.out
    args.out_abs = str(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    data = Path(tempfile.mkdtemp(prefix="deg_demos_"))
    demo_rate = record_demos(data / "train", args, args.demos, 0)
    record_demos(data / "heldout", args, args.heldout_demos, 1000)
    model = out / "deg_model"
    settings = {k: getattr(args, k) for k in ("scene", "camera", "image_size", "demos", "demo_noise", "settle_steps",
                                              "max_steps", "guidance", "encoder_steps", "encoder_seed")}
    if not (model / "bench_settings.json").exists() or json.loads((model / "bench_settings.json").read_text()) \
            != settings:   # the DEG model is reused while the settings it was trained with are unchanged
        train_deg(data / "train", args.camera, model, [args.guidance], encoder_steps=args.encoder_steps,
                  guidance_steps=800, image_size=args.image_size, seed=args.encoder_seed)
        (model / "bench_settings.json").write_text(json.dumps(settings))
    diag = diagnose(model, data / "heldout", args)
    approach = last_frame_match_by_distance(model, args)
    print(json.dumps(diag, indent=1))
    diffusion = time_diffusion_guidance(data / "train", model, args) if args.diffusion_steps else None
    jobs = [(arm, seed, model, data / "train", args) for arm in args.arms for seed in args.seeds]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:   # each run on one core
        runs = pool.starmap(run_one, jobs)
    results = {arm: [r for (a, *_), r in zip(jobs, runs) if a == arm] for arm in args.arms}
    (out / "results.json").write_text(json.dumps({"results": results, "diagnostics": diag, "diffusion": diffusion,
                                                    "approach": approach}))
    minutes = (time.monotonic() - start) / 60
    if not set(ARMS) <= set(args.arms):   # no claim table without both arms: the numbers only
        print({arm: [r["curve"] for r in runs] for arm, runs in results.items()})
        if not args.no_write:
            write_results(args.name, long_rows(results, diag, approach, args))
        return 0
    plot(results, out / f"{args.name}.png", args)
    table = []
    for arm in results:
        runs = results[arm]
        final = np.array([r["curve"]["outcomes"][-1] for r in runs])
        curve = np.mean([[np.mean(o) for o in r["curve"]["outcomes"]] for r in runs], axis=0)
        table.append([arm, str(mean_interval(final.mean(1), RATE)), str(wilson(int(final.sum()), final.size)),
                      " / ".join(f"{np.mean(o):.2f}" for o in final), " / ".join(f"{v:.2f}" for v in curve),
                      f"{np.mean([t['success'] for r in runs for t in r['train']]):.2f}"])
    final_mean = {arm: float(np.mean([np.mean(r["curve"]["outcomes"][-1]) for r in results[arm]])) for arm in ARMS}
    met = final_mean["sparse"] < 0.2 and final_mean["deg+"] >= 0.6
    verdict = (f"Target (sparse < 0.20 and DEG+ ≥ 0.60 final success, mean of seeds): **{'met' if met else 'not met'}"
               f"** (sparse {final_mean['sparse']:.2f}, DEG+ {final_mean['deg+']:.2f}).")
    table = markdown_table(["reward", "final success (mean of seeds, t 95 %)", "final, pooled episodes (Wilson 95 %)",
                            "final per seed", f"mean curve (every {args.eval_every} steps)",
                            "training-episode success"], table)
    cmd = "python -m bench.deg_vs_sparse " + " ".join(argv if argv is not None else sys.argv[1:])
    learner = ("soft actor-critic from scratch (robot_rl/rl/sac.py: n-step 3, entropy target −3, state scaled by "
               f"its first {args.seed_steps} random steps; acts on the EE translation; evaluated with its mean action "
               f"+ N(0, {args.eval_noise}²))" if args.learner == "sac" else
               f"POCO offline-to-online (mode {args.poco_mode}) on a flow chunk policy (BC warm start of "
               f"{args.bc_steps} steps on the demos; the demos, rewarded as the arm rewards and cut at their first "
               f"success, warm the critic up and anchor the actor)")
    diff_txt = (f" Diffusion guidance ({diffusion['train_steps']} DDPM training steps, {diffusion['train_s']:.0f} s): "
                f"one {diffusion['frames']}-frame clip for an unseen scene in {diffusion['clip_s']:.1f} s "
                f"({diffusion['sample_steps']} DDIM steps, one core)." if diffusion else "")
    payment = "(1 − γ)Φ(s′)" if args.payment == "level" else "γΦ(s′) − Φ(s)"
    title = "" if args.learner == "sac" else f": POCO warm-started, mode {args.poco_mode}"
    md = (f"## DEG+ dense reward vs sparse success, the same learner and budget{title}\n\n"
          f"DEG+ ({payment} + θ·1[success], θ {args.theta}) vs sparse θ·1[success], the same {learner} and "
          f"{args.env_steps} env steps per run, seeds {args.seeds}, `{TASK}` on fixed scene {args.scene} "
          f"({args.max_steps}-step episodes). DEG reads the {args.image_size}×{args.image_size} `{args.camera}` "
          f"camera; encoder ({args.encoder_steps} InfoNCE steps) and `{args.guidance}` guidance (a substitute for the "
          f"paper's video model) trained on {args.demos} scripted demos (noise {args.demo_noise}, {demo_rate:.0%} "
          f"successful, recorded {args.settle_steps} steps past first reaching the goal), thresholds calibrated "
          f"on a held-out fifth of them. DEG's goal weight κ {args.goal_weight}. Evaluation: {args.eval_episodes} "
          f"episodes per point.{diff_txt}\n\n"
          f"Reward diagnostics on {diag['episodes']} held-out demos: ordered return {diag['ordered_return']:.2f} vs "
          f"shuffled {diag['shuffled_return']:.2f}; matched/mismatched ROC AUC {diag['match_roc_auc']:.3f}; "
          f"δ_c {diag['coarse_threshold']:.3f}, δ_f {diag['fine_threshold']:.3f}. Along a straight approach to the "
          f"goal, cosine to the guidance's last frame (best-matching frame of {approach[0]['frames']}): "
          + ", ".join(f"{a['distance_m'] * 100:.1f} cm {a['last_frame_cosine']:.3f} ({a['best_frame']})"
                      for a in approach) + ".\n\n"
          + (f"`{REFERENCE}` is a reference, not a method: the same payment of the privileged potential "
             f"α·(1 − d/d₀) (d the TCP's distance to the goal). It tells whether the learner can use a dense reward "
             f"that resolves the last centimetres at this budget.\n\n" if REFERENCE in results else "")
          + f"{table}\n\n{verdict}\n\n"
          f"![success against env steps]({args.name}.png)\n\nNumbers: docs/results/{args.name}.json. "
          f"Command: `{cmd.strip()}` ({minutes:.0f} min). {machine_line()}\n")
    print(md)
    if args.no_write:
        return 0
    write_results(args.name, long_rows(results, diag, approach, args))
    shutil.copyfile(out / f"{args.name}.png", ROOT / "docs" / f"{args.name}.png")
    write_section(args.name, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
