"""Claim experiment: DEG+ (dense guidance reward + θ·success) against sparse success alone, same POCO learner.

Setting (a small CPU stand-in for the paper's drawer-open, 300k steps): the `reach` task on one fixed scene
(gym PandaTaskEnv, seed `--scene`), a state-only flow-matching chunk policy trained from scratch (no BC
pretraining, no demonstrations in the replay store) by the POCO learner (robot_rl.rl.poco, public API only).
The DEG reward reads the env's 64×64 `front` camera:
  1. a few noisy scripted-expert episodes of the scene are recorded as a LeRobot v3 dataset with video,
  2. `robot-rl deg train` trains the contrastive encoder and the latent guidance predictor on them,
  3. both runs get the same env-step budget; sparse: r = θ·1[success]; DEG+: r = α(r_c + β r_f) + θ·1[success].
Success is measured every `--eval-every` env steps on `--eval-episodes` episodes (the policy samples, as in
training). Guidance is made from each episode's first frame at reset and cached by that frame.

    python -m bench.deg_vs_sparse [--env-steps 6000] [--seeds 0]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine_line, markdown_table, write_section  # noqa: E402

TASK = "reach"
CAMERA = "front"
SIZE = 64


def make_env(max_steps: int):
    from robot_rl.sim.gym_env import PandaTaskEnv

    return PandaTaskEnv(TASK, max_steps=max_steps, cameras={CAMERA: (SIZE, SIZE)})


def record_demos(root: Path, scene: int, episodes: int, noise: float, max_steps: int) -> float:
    """Noisy scripted expert on the fixed scene, written as a LeRobot v3 dataset; returns its success rate."""
    from robot_rl.core.types import EE_SPACE_NAMES
    from robot_rl.core.state import STATE_NAMES
    from robot_rl.data.lerobot import LeRobotWriter
    from robot_rl.sim.expert import expert_chunk
    from robot_rl.core.types import CONTROL_HZ
    from robot_rl.sim.gym_env import normalise_ee_delta

    env = make_env(max_steps)
    wins = 0
    with LeRobotWriter(root, CONTROL_HZ, STATE_NAMES, EE_SPACE_NAMES, [CAMERA], (SIZE, SIZE, 3),
                       robot_type="panda_sim") as writer:
        for ep in range(episodes):
            obs, info = env.reset(seed=scene)
            rng = np.random.default_rng([scene, ep])
            done = success = False
            while not done:
                for delta in expert_chunk(info["task_state"], 5, rng, noise):
                    state, image = obs["state"], obs[CAMERA]
                    obs, _, terminated, truncated, info = env.step(normalise_ee_delta(delta))
                    success, done = info["success"], terminated or truncated
                    writer.add_frame(state, np.r_[delta[:6], delta[6]], float(success), done, False,
                                     {CAMERA: image}, task=TASK)
                    if done:
                        break
            writer.save_episode(success=success)
            wins += success
    env.close()
    return wins / episodes


class DEGPlus:
    """DEG+ reward for the gym loop: α(r_c + β r_f) from the frozen encoder and cached guidance, + θ·success."""

    def __init__(self, model: Path, guidance: str):
        from robot_rl.rewards.deg import DEGParams, DEGReward, load_encoder
        from robot_rl.rewards.guidance import load_provider

        self.encoder, meta = load_encoder(model)
        self.provider = load_provider(model, guidance, self.encoder, meta)
        self.params = DEGParams()
        self.reward = DEGReward(self.params, meta["mean_episode_length"])
        self.cache: dict[str, object] = {}

    def reset(self, first_frame: np.ndarray) -> None:
        key = hashlib.sha1(first_frame.tobytes()).hexdigest()
        if key not in self.cache:
            self.cache[key] = self.provider.make_guidance(first_frame, TASK).latents
        self.reward.reset(self.cache[key])

    def __call__(self, frame: np.ndarray) -> tuple[float, int]:
        from robot_rl.rewards.deg import encode

        s = self.reward.step(encode(self.encoder, frame)[0])
        return s.reward, s.pointer


def run(kind: str, model: Path | None, demos: Path, args, seed: int) -> dict:
    """One training run; returns the success curve and per-episode training stats."""
    import torch

    from robot_rl.data.lerobot import LeRobotReader
    from robot_rl.policies import PolicySpec, build_policy
    from robot_rl.rl.poco import POCOConfig, POCOLearner
    from robot_rl.rl.pretrain import normalizer_from_dataset, pretrain
    from robot_rl.rl.replay import Episode, ReplayStore
    from robot_rl.sim.gym_env import normalise_ee_delta

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    reader = LeRobotReader(demos)
    spec = PolicySpec(type="flow", action_names=reader.action_names, state_dim=len(reader.state_names),
                      horizon=5, execute_steps=5, hidden_dim=128, depth=2, flow_steps=5)
    if args.bc_steps:  # optional warm start: a short behaviour cloning on the demos, identical for both rewards
        policy = pretrain(demos, spec.model_dump(exclude={"action_names", "state_dim", "environment_state"}),
                          args.bc_steps, Path(args.out_abs) / f"bc_seed{seed}", batch_size=128, seed=seed)
    else:
        policy = build_policy(spec, normalizer_from_dataset(reader))   # normaliser only: weights start random
    cfg = POCOConfig(batch_size=args.batch, num_candidates=16, warmup_updates=args.warmup, critic_hidden=128,
                     critic_depth=2, step_penalty=0.0, temperature=1e-3, bc_anchor="buffer")
    learner = POCOLearner(policy, cfg, seed=seed)
    store = ReplayStore(horizon=spec.horizon, gamma=cfg.gamma)
    dense = DEGPlus(model, args.guidance) if kind == "deg+" else None
    env = make_env(args.max_steps)

    def episode(train: bool) -> tuple[bool, float, int, int]:
        obs, _ = env.reset(seed=args.scene)
        if dense and train:
            dense.reset(obs[CAMERA])
        states, actions, rewards, success, done, pointer = [obs["state"]], [], [], False, False, 0
        while not done:
            chunk = learner.act({"state": torch.as_tensor(obs["state"])[None]})
            raw = policy.normalizer.unnormalize_actions(chunk)[0].numpy()
            for k in range(spec.horizon):
                obs, _, terminated, truncated, info = env.step(normalise_ee_delta(raw[k]))
                success, done = bool(info["success"]), terminated or truncated
                r = args.theta * float(success)
                if dense and train:
                    r_dense, pointer = dense(obs[CAMERA])
                    r += r_dense
                states.append(obs["state"])
                actions.append(chunk[0, k].numpy())
                rewards.append(r)
                if done:
                    break
        if train:
            store.add(Episode(np.asarray(states), np.asarray(actions), np.asarray(rewards, np.float32), success))
        return success, float(np.sum(rewards)), len(actions), pointer

    curve = {"env_steps": [], "success": []}
    train_log = []
    steps, next_eval = 0, 0
    from tqdm import tqdm

    with tqdm(total=args.env_steps, desc=f"{kind} seed {seed}", unit="step") as bar:
        while True:
            if steps >= next_eval:
                wins = [episode(train=False)[0] for _ in range(args.eval_episodes)]
                curve["env_steps"].append(steps)
                curve["success"].append(float(np.mean(wins)))
                bar.set_postfix(success=f"{curve['success'][-1]:.2f}")
                next_eval += args.eval_every
            if steps >= args.env_steps:
                break
            success, ret, n, pointer = episode(train=True)
            train_log.append({"success": success, "return": ret, "steps": n, "pointer": pointer})
            for _ in range(n):
                learner.update(store.sample(cfg.batch_size, rng))
            steps += n
            bar.update(n)
    env.close()
    return {"curve": curve, "train": train_log}


def plot(results: dict, path: Path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for kind, colour in (("sparse", "tab:gray"), ("deg+", "tab:blue")):
        for i, r in enumerate(results[kind]):
            axes[0].plot(r["curve"]["env_steps"], r["curve"]["success"], color=colour, alpha=0.8,
                         label=kind if i == 0 else None, marker="o", ms=3)
            cum = np.cumsum([t["steps"] for t in r["train"]])
            axes[1].plot(cum, [t["pointer"] for t in r["train"]], color=colour, alpha=0.6,
                         label=f"{kind} (DEG pointer at episode end)" if i == 0 and kind == "deg+" else None)
    start = f"BC {args.bc_steps} steps" if args.bc_steps else "from scratch"
    axes[0].set(xlabel="env steps", ylabel="success rate", title=f"{TASK}, scene {args.scene}: POCO, {start}",
                ylim=(-0.05, 1.05))
    axes[0].legend()
    axes[1].set(xlabel="env steps", ylabel="guidance frame reached", title="DEG progress pointer (training episodes)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-steps", type=int, default=6000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--scene", type=int, default=3)
    parser.add_argument("--demos", type=int, default=5)
    parser.add_argument("--demo-noise", type=float, default=0.3)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--bc-steps", type=int, default=0, help="BC warm start on the demos (0: from scratch)")
    parser.add_argument("--theta", type=float, default=10.0)
    parser.add_argument("--guidance", default="latent", choices=["latent", "nearest"])
    parser.add_argument("--encoder-steps", type=int, default=1000)
    parser.add_argument("--out", default="runs/bench/deg_vs_sparse")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args(argv)

    import torch

    from robot_rl.rewards.deg_tools import train_deg

    torch.set_num_threads(1)
    out = ROOT / args.out
    args.out_abs = str(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    demos = Path(tempfile.mkdtemp(prefix="deg_demos_")) / "reach"
    demo_rate = record_demos(demos, args.scene, args.demos, args.demo_noise, args.max_steps)
    model = out / "deg_model"
    train_deg(demos, CAMERA, model, [args.guidance], encoder_steps=args.encoder_steps, guidance_steps=800)
    results = {kind: [run(kind, model, demos, args, s) for s in args.seeds] for kind in ("sparse", "deg+")}
    (out / "results.json").write_text(json.dumps(results))
    plot(results, out / "deg_vs_sparse.png", args)
    rows = []
    for kind, runs in results.items():
        final = [r["curve"]["success"][-1] for r in runs]
        best = [max(r["curve"]["success"]) for r in runs]
        train_rate = [np.mean([t["success"] for t in r["train"][-20:]]) for r in runs]
        rows.append([kind, f"{np.mean(final):.2f}", f"{np.mean(best):.2f}", f"{np.mean(train_rate):.2f}",
                     " / ".join(f"{v:.2f}" for v in runs[0]["curve"]["success"])])
    table = markdown_table(["reward", "final success", "best eval success", "last 20 training episodes",
                            f"eval curve (every {args.eval_every} steps, seed {args.seeds[0]})"], rows)
    minutes = (time.monotonic() - start) / 60
    cmd = "python -m bench.deg_vs_sparse " + " ".join(argv if argv is not None else sys.argv[1:])
    plot_rel = (out / "deg_vs_sparse.png").relative_to(ROOT)
    if not args.no_write:  # the curves go next to docs/benchmarks.md (runs/ is not versioned)
        shutil.copyfile(out / "deg_vs_sparse.png", ROOT / "docs" / "deg_vs_sparse.png")
        plot_rel = "docs/deg_vs_sparse.png"
    start_from = f"BC warm start ({args.bc_steps} steps on the demos)" if args.bc_steps else "from scratch"
    md = (f"DEG+ (dense guidance reward + θ·success) vs sparse success, same POCO learner {start_from}, "
          f"`{TASK}` on fixed scene {args.scene}, {args.env_steps} env steps, seeds {args.seeds}, guidance "
          f"`{args.guidance}` (a substitute for the paper's video model), {args.demos} expert videos "
          f"(scripted, noise {args.demo_noise}, {demo_rate:.0%} successful). Success of {args.eval_episodes} "
          f"evaluation episodes every {args.eval_every} env steps.\n\n{table}\n\nCurves: `{plot_rel}`. "
          f"Command: `{cmd.strip()}` ({minutes:.0f} min). {machine_line()}\n")
    print(md)
    if not args.no_write:
        write_section("deg_vs_sparse", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
