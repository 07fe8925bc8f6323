"""POCO against its baselines on pick_lift in the gymnasium env (its actions pass the robot's safety steps, so it
scores like the ROS graph). Per training seed, one set of noisy demonstrations and one BC prior (the main job's
settings, DemoConfig) shared by every method; the same env-step budget; every evaluation on the same episode seeds
(EVAL_SEED + i) for every method and seed, so differences are paired.

    python -m bench.poco_pick_lift [--seeds 0 1 2] [--modes poco bc best_of_n actor_gradient] [--env-steps 3000]
        [--eval-every 1500] [--eval-episodes 100] [--workers 2] [--set poco.KEY=VALUE ...]
    python -m bench.poco_pick_lift --name poco_pick_lift_ablation --modes \
        --ablate expert_anchor:poco.bc_anchor=expert --compare docs/results/poco_pick_lift.json

Writes the `<name>` section of docs/benchmarks.md, docs/results/<name>.json (long format: per method and seed the
prior, final and worst success, the success at every evaluation, every evaluated episode's outcome) and
docs/<name>.png (success against env steps, 95 % bands over seeds). An ablation (`--ablate LABEL:SETS`) is POCO with
those settings, from the same priors; `--compare` adds paired differences of the final evaluation to the methods of
an earlier run on the same seeds and episodes. Each job's result is kept under runs/ and reused while its settings
are unchanged.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path

from tqdm import tqdm

from bench.learning_table import MODES, final_outcomes, long_rows, plot, summary_table, variants
from bench.report import ROOT, machine_line, write_results, write_section
from robot_rl.core.types import EVAL_SEED
from robot_rl.demo import DemoConfig

WORKDIR = ROOT / "runs" / "bench_poco_pick_lift"


def prior_for(seed: int, cfg: DemoConfig) -> tuple[Path, Path]:
    """The seed's demonstrations and BC prior, made once (reused by every method and by later runs)."""
    import torch

    from robot_rl.data.collect_sim import collect_demos
    from robot_rl.rl.pretrain import pretrain

    torch.set_num_threads(1)
    demos, prior = WORKDIR / f"seed{seed}" / "demos", WORKDIR / f"seed{seed}" / "prior"  # beside the learners' dirs
    if not (prior / "config.json").exists():
        import shutil

        shutil.rmtree(demos, ignore_errors=True)
        collect_demos(cfg.task, cfg.demo_episodes, cfg.demo_noise, seed, demos, max_steps=cfg.max_steps,
                      environment_state=True)
        pretrain(demos, {"type": "flow", "horizon": 5, "execute_steps": 5, "hidden_dim": cfg.hidden_dim},
                 cfg.bc_steps, prior, batch_size=cfg.bc_batch_size, seed=seed)
    return demos, prior


def run_method(job: tuple[int, str, list[str], dict]) -> dict:
    """One learner (a mode or an ablation `label`) from one seed's prior; returns its curve (outcomes per
    evaluation, learner metrics), kept in its run directory and reused while the job is the same."""
    seed, label, sets, budget = job
    out = WORKDIR / f"seed{seed}" / label
    spec = {"seed": seed, "label": label, "sets": sets, "budget": budget}
    cached = out / "result.json"
    if cached.exists() and json.loads(cached.read_text())["job"] == spec:
        return json.loads(cached.read_text())["result"]
    import torch

    from robot_rl.core.yaml_config import apply_sets
    from robot_rl.rl.config import POCOConfig
    from robot_rl.rl.online import OnlineConfig, finetune_checkpoint
    from robot_rl.sim.gym_env import PandaTaskEnv, normalise_ee_delta

    torch.set_num_threads(1)
    cfg = DemoConfig()
    demos, prior = prior_for(seed, cfg)
    mode = label if label in MODES else "poco"
    poco = POCOConfig.model_validate(apply_sets({"poco": {"mode": mode}}, sets)["poco"])
    online = OnlineConfig(env_steps=budget["env_steps"], eval_every=budget["eval_every"],
                          eval_episodes=budget["eval_episodes"], seed=seed)
    start = time.monotonic()
    curve = finetune_checkpoint(prior, demos, PandaTaskEnv(cfg.task, max_steps=cfg.max_steps), poco, online, out,
                                normalise_ee_delta)
    result = {"seed": seed, "mode": label, "env_steps": curve.env_steps, "metrics": curve.metrics,
              "outcomes": [o.astype(int).tolist() for o in curve.outcomes], "wall_s": time.monotonic() - start}
    cached.write_text(json.dumps({"job": spec, "result": result}))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    parser.add_argument("--ablate", action="append", default=[], metavar="LABEL:poco.KEY=VALUE[,...]",
                        help="POCO with these settings, reported as LABEL")
    parser.add_argument("--compare", help="a results file of an earlier run (same seeds and episodes)")
    parser.add_argument("--name", default="poco_pick_lift", help="section, results and plot name")
    parser.add_argument("--env-steps", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=1500)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="processes (one core each)")
    parser.add_argument("--set", action="append", default=[], metavar="poco.KEY=VALUE", help="for every method")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if clash := [a for a in args.ablate if a.split(":")[0] in ("prior", "demos")]:
        parser.error(f"--ablate {clash[0]}: the label names the run's directory beside the seed's prior and demos; "
                     "choose another")
    budget = {"env_steps": args.env_steps, "eval_every": args.eval_every, "eval_episodes": args.eval_episodes}
    start = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        pool.starmap(prior_for, [(seed, DemoConfig()) for seed in args.seeds])  # each prior once, in parallel
        learners = variants(args.modes, args.set, args.ablate)
        jobs = [(seed, label, sets, budget) for seed in args.seeds for label, sets in learners]
        runs = list(tqdm(pool.imap_unordered(run_method, jobs), total=len(jobs), desc="pick_lift learners"))
    labels = [label for label, _ in learners]
    table = summary_table(runs, labels, final_outcomes(args.compare) if args.compare else None)
    print(table)
    if args.no_write:
        return 0
    write_results(args.name, long_rows(runs))
    plot(runs, labels, ROOT / "docs" / f"{args.name}.png", "pick_lift (gym)")
    cfg = DemoConfig()
    sets = " ".join(f"--set {s}" for s in args.set)
    ablations = " ".join([f"--ablate {a}" for a in args.ablate]
                         + ([f"--compare {args.compare}"] if args.compare else []))
    write_section(args.name, "\n".join([
        f"## {'POCO and its baselines' if args.modes else 'POCO ablations'} on pick_lift, {args.env_steps} env steps: "
        f"{', '.join(labels)} (gym, powered evaluation)",
        "",
        f"`python -m bench.poco_pick_lift --name {args.name} --seeds {' '.join(map(str, args.seeds))} --modes "
        f"{' '.join(args.modes)} --env-steps {args.env_steps} --eval-every {args.eval_every} --eval-episodes "
        f"{args.eval_episodes}{' ' + sets if sets else ''}{' ' + ablations if ablations else ''}` "
        f"({(time.monotonic() - start) / 60:.0f} min). {machine_line()}",
        "",
        f"Per training seed: {cfg.demo_episodes} scripted demonstrations with noise {cfg.demo_noise} and a flow prior "
        f"({cfg.bc_steps} BC steps, hidden {cfg.hidden_dim}) shared by every method; POCOConfig defaults "
        f"(robot_rl/rl/config.py) unless set above; UTD 1; evaluations on episodes {EVAL_SEED}.."
        f"{EVAL_SEED + args.eval_episodes - 1} for every method and seed. Intervals are 95 %: t over seeds for "
        f"means, a paired bootstrap over seeds and episodes for changes. Step 0 is the prior after the critic's "
        f"warm-up: best_of_n already picks among N candidates there. Numbers: docs/results/{args.name}.json.",
        "",
        table,
        "",
        f"![success against env steps]({args.name}.png)",
    ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
