"""POCO against its baselines on pick_lift in the gymnasium env (its actions pass the robot's safety steps, so it
scores like the ROS graph). Per training seed, one set of noisy demonstrations and one BC prior (the main job's
settings, DemoConfig) shared by every method; the same env-step budget; every evaluation on the same episode seeds
(EVAL_SEED + i) for every method and seed, so differences are paired.

    python -m bench.poco_pick_lift [--seeds 0 1 2] [--modes poco bc best_of_n actor_gradient] [--env-steps 3000]
        [--eval-every 1000] [--eval-episodes 100] [--workers 2] [--set poco.KEY=VALUE ...]

Writes the `poco_pick_lift` section of docs/benchmarks.md, docs/results/poco_pick_lift.json (long format: per method
and seed the prior, final and worst success, the success at every evaluation, the final evaluation's episodes) and
docs/poco_pick_lift.png (success against env steps, 95 % bands over seeds).
"""
from __future__ import annotations

import argparse
import multiprocessing
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.report import ROOT, machine_line, markdown_table, write_results, write_section
from robot_rl.core.stats import mean_interval, paired_difference, wilson
from robot_rl.core.types import EVAL_SEED
from robot_rl.demo import DemoConfig

MODES = ("poco", "bc", "best_of_n", "actor_gradient")
WORKDIR = ROOT / "runs" / "bench_poco_pick_lift"


def prior_for(seed: int, cfg: DemoConfig) -> tuple[Path, Path]:
    """The seed's demonstrations and BC prior, made once (reused by every method and by later runs)."""
    import torch

    from robot_rl.data.collect_sim import collect_demos
    from robot_rl.rl.pretrain import pretrain

    torch.set_num_threads(1)
    demos, prior = WORKDIR / f"seed{seed}" / "demos", WORKDIR / f"seed{seed}" / "bc"
    if not (prior / "config.json").exists():
        import shutil

        shutil.rmtree(demos, ignore_errors=True)
        collect_demos(cfg.task, cfg.demo_episodes, cfg.demo_noise, seed, demos, max_steps=cfg.max_steps,
                      environment_state=True)
        pretrain(demos, {"type": "flow", "horizon": 5, "execute_steps": 5, "hidden_dim": cfg.hidden_dim},
                 cfg.bc_steps, prior, batch_size=cfg.bc_batch_size, seed=seed)
    return demos, prior


def run_method(job: tuple[int, str, list[str], dict]) -> dict:
    """One learner from one seed's prior; returns its curve (outcomes per evaluation, learner metrics)."""
    seed, mode, sets, budget = job
    import torch

    from robot_rl.core.yaml_config import apply_sets
    from robot_rl.rl.config import POCOConfig
    from robot_rl.rl.online import OnlineConfig, finetune_checkpoint
    from robot_rl.sim.gym_env import PandaTaskEnv, normalise_ee_delta

    torch.set_num_threads(1)
    cfg = DemoConfig()
    demos, prior = prior_for(seed, cfg)
    poco = POCOConfig.model_validate(apply_sets({"poco": {"mode": mode}}, sets)["poco"])
    online = OnlineConfig(env_steps=budget["env_steps"], eval_every=budget["eval_every"],
                          eval_episodes=budget["eval_episodes"], seed=seed)
    start = time.monotonic()
    curve = finetune_checkpoint(prior, demos, PandaTaskEnv(cfg.task, max_steps=cfg.max_steps), poco, online,
                                WORKDIR / f"seed{seed}" / mode, normalise_ee_delta)
    return {"seed": seed, "mode": mode, "env_steps": curve.env_steps, "metrics": curve.metrics,
            "outcomes": [o.astype(int).tolist() for o in curve.outcomes], "wall_s": time.monotonic() - start}


def long_rows(runs: list[dict]) -> list[dict]:
    rows = []
    for r in runs:
        success = [float(np.mean(o)) for o in r["outcomes"]]
        base = {"method": r["mode"], "seed": r["seed"]}
        rows += [dict(base, metric="prior_success", value=success[0]),
                 dict(base, metric="final_success", value=success[-1]),
                 dict(base, metric="min_success", value=min(success)),
                 dict(base, metric="wall_s", value=round(r["wall_s"], 1))]
        rows += [dict(base, metric="success", env_steps=s, value=v) for s, v in zip(r["env_steps"], success)]
        for name in ("weight_ess", "q_clip_ratio"):
            rows += [dict(base, metric=name, env_steps=s, value=m[name])
                     for s, m in zip(r["env_steps"], r["metrics"]) if name in m]
        rows += [dict(base, metric="final_outcome", episode=EVAL_SEED + i, value=int(v))
                 for i, v in enumerate(r["outcomes"][-1])]
    return rows


def summary_table(runs: list[dict], modes: list[str]) -> str:
    """Per method: prior, final and worst evaluation (mean over seeds, t interval), the change from the prior and the
    difference to BC-only (paired bootstrap over seeds and episodes), the learner's diagnostics."""
    by = {(r["mode"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    table = []
    for mode in modes:
        own = [by[(mode, s)] for s in seeds]
        first = np.array([r["outcomes"][0] for r in own])
        final = np.array([r["outcomes"][-1] for r in own])
        worst = [min(np.mean(o) for o in r["outcomes"]) for r in own]
        vs_bc = (paired_difference(final, np.array([by[("bc", s)]["outcomes"][-1] for s in seeds])).points()
                 if "bc" in modes and mode != "bc" else "–")
        metrics = [m for r in own for m in r["metrics"][1:]]
        ess = np.nanmean([m.get("weight_ess", np.nan) for m in metrics]) if metrics else np.nan
        clip = np.nanmean([m.get("q_clip_ratio", np.nan) for m in metrics]) if metrics else np.nan
        table.append([mode, str(mean_interval(first.mean(1))), str(mean_interval(final.mean(1))),
                      f"{min(worst):.2f}", paired_difference(final, first).points(), vs_bc,
                      f"{ess:.1f}" if np.isfinite(ess) else "–", f"{clip:.2f}" if np.isfinite(clip) else "–"])
    return markdown_table(["method", "prior (step 0)", "final", "worst evaluation", "change (points)",
                           "vs BC-only (points)", "weight ESS", "q_clip_ratio"], table)


def plot(runs: list[dict], modes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode in modes:
        own = [r for r in runs if r["mode"] == mode]
        steps = own[0]["env_steps"]
        per_seed = np.array([[np.mean(o) for o in r["outcomes"]] for r in own])   # (seeds, evaluations)
        if len(own) > 1:
            bands = [mean_interval(per_seed[:, k]) for k in range(len(steps))]
        else:
            bands = [wilson(int(np.sum(o)), len(o)) for o in own[0]["outcomes"]]
        ax.plot(steps, per_seed.mean(0), marker="o", label=mode)
        ax.fill_between(steps, [max(0, b.low) for b in bands], [min(1, b.high) for b in bands], alpha=0.15)
    ax.set(xlabel="env steps", ylabel="success", ylim=(-0.02, 1.02),
           title=f"pick_lift (gym): mean of {len({r['seed'] for r in runs})} seeds, 95 % band")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--env-steps", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="processes (one core each)")
    parser.add_argument("--set", action="append", default=[], metavar="poco.KEY=VALUE", help="for every method")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    budget = {"env_steps": args.env_steps, "eval_every": args.eval_every, "eval_episodes": args.eval_episodes}
    start = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        pool.starmap(prior_for, [(seed, DemoConfig()) for seed in args.seeds])  # each prior once, in parallel
        jobs = [(seed, mode, args.set, budget) for seed in args.seeds for mode in args.modes]
        runs = list(tqdm(pool.imap_unordered(run_method, jobs), total=len(jobs), desc="pick_lift learners"))
    table = summary_table(runs, args.modes)
    print(table)
    if args.no_write:
        return 0
    write_results("poco_pick_lift", long_rows(runs))
    plot(runs, args.modes, ROOT / "docs" / "poco_pick_lift.png")
    cfg = DemoConfig()
    sets = " ".join(f"--set {s}" for s in args.set)
    write_section("poco_pick_lift", "\n".join([
        "## POCO and its baselines on pick_lift (gym, powered evaluation)",
        "",
        f"`python -m bench.poco_pick_lift --seeds {' '.join(map(str, args.seeds))} --modes {' '.join(args.modes)} "
        f"--env-steps {args.env_steps} --eval-every {args.eval_every} --eval-episodes {args.eval_episodes}"
        f"{' ' + sets if sets else ''}` ({(time.monotonic() - start) / 60:.0f} min). {machine_line()}",
        "",
        f"Per training seed: {cfg.demo_episodes} scripted demonstrations with noise {cfg.demo_noise} and a flow prior "
        f"({cfg.bc_steps} BC steps, hidden {cfg.hidden_dim}) shared by every method; POCOConfig defaults "
        f"(robot_rl/rl/config.py) unless set above; UTD 1; evaluations on episodes {EVAL_SEED}.."
        f"{EVAL_SEED + args.eval_episodes - 1} for every method and seed. Intervals are 95 %: t over seeds for means, a paired "
        "bootstrap over seeds and episodes for changes. Numbers: docs/results/poco_pick_lift.json.",
        "",
        table,
        "",
        "![success against env steps](poco_pick_lift.png)",
    ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
