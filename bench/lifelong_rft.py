"""LifeLong-RFT vs SFT in the continual protocol on the sim tasks (robot_rl/rl/continual.py).

Both methods start from the same stage-0 SFT policy and see the same demos, replay picks and evaluation episodes
(EVAL_SEED + i for every cell), so their differences are paired. Tables: the success matrix after every stage,
FWT / NBT / AUC with 95 % intervals (t over seeds for means; a paired bootstrap over seeds and episodes for
RFT − SFT), the worst dip, the malformed share; then, on the first seed's base policy, stage-0 GRPO at several
learning rates and the other tokenizer's base. State observations (robot + object/goal state), a small tokenized
policy on one CPU thread: minutes, not the paper's scale.

    python -m bench.lifelong_rft [--seeds 0 1 2] [--config config/rft.yaml] [--lr-sweep 3e-5 1e-4 3e-4]
        [--tokenizers fast] [--set rft.iterations=100 ...]

Writes the `lifelong_rft` section of docs/benchmarks.md, docs/results/lifelong_rft.json (long format: per method and
seed FWT / NBT / AUC in points, malformed_rate and success as fractions, every evaluated episode's outcome) and
docs/lifelong_rft_rewards.png. Each seed's runs are kept under the workdir and reused while the settings are the same.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.report import ROOT, machine_line, markdown_table, write_results, write_section
from robot_rl.core.stats import mean_interval, paired_difference, wilson
from robot_rl.core.types import EVAL_SEED

# The paper's continual LIBERO results (FWT / NBT / AUC, %), SFT → LifeLong-RFT, mean of Object/Spatial/Goal/Long.
PAPER = {"sft": (75.35, 15.83, 63.28), "rft": (89.15, 5.28, 85.20)}
METHODS = ("sft", "rft")
CURVES = "docs/lifelong_rft_rewards.png"
DIAGNOSTICS = ("qacr", "ctar", "fcr", "mdpr", "reward_std", "clip_frac", "ratio_dev", "kl")


def plot_rft_curves(histories: list[list[dict]], path: Path) -> None:
    """MDPR terms and the clipped-token fraction over the GRPO iterations of every stage, stages back to back."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = [h for stage in histories for h in stage]
    bounds = np.cumsum([len(stage) for stage in histories])[:-1]
    window = max(1, len(history) // 60)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name in ("qacr", "ctar", "fcr", "mdpr", "clip_frac"):
        values = np.nan_to_num(np.asarray([h[name] for h in history]))
        ax.plot(np.arange(window - 1, len(values)), np.convolve(values, np.ones(window) / window, mode="valid"),
                label=name.upper() if name != "clip_frac" else "clip fraction")
    for b in bounds:
        ax.axvline(b, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("GRPO iteration (dotted: next continual stage)")
    ax.set_ylabel("mean over the sampled groups")
    ax.set_title("LifeLong-RFT on the sim tasks (first seed)")
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def cache_key(cfg, seed: int, extra: dict | None = None) -> str:
    blob = json.dumps({"cfg": cfg.model_dump(), "seed": seed, "extra": extra or {}}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def run_seed(cfg, workdir: Path, seed: int) -> dict:
    """Both methods on one seed (robot_rl.rl.continual.run_protocol), kept as JSON and reused while cfg is the same."""
    from robot_rl.rl.continual import run_protocol

    cached = workdir / f"run_s{seed}_{cache_key(cfg, seed)}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    start = time.monotonic()
    results = run_protocol(cfg, workdir, seed)
    run = {"seed": seed, "tasks": results["tasks"], "stage_sizes": results["stage_sizes"],
           "wall_s": time.monotonic() - start}
    for m in METHODS:
        r = results[m]
        run[m] = {"outcomes": np.nan_to_num(r["outcomes"], nan=-1).astype(int).tolist(),
                  "metrics": r["metrics"], "malformed_rate": r["malformed_rate"], "histories": r["histories"],
                  "episode_metrics": {k: v.tolist() for k, v in r["episode_metrics"].items()}}
    cached.write_text(json.dumps(run))
    return run


def stage0_variants(cfg, workdir: Path, seed: int, lrs: list[float], tokenizers: list[str]) -> list[dict]:
    """On one seed: stage-0 GRPO at each learning rate from the shared base, and the base SFT policy of each other
    tokenizer (same SFT budget), each evaluated on the base tasks. Kept as JSON and reused."""
    import torch

    from robot_rl.rl.continual import evaluate_policy, prepare_protocol
    from robot_rl.rl.lifelong_rft import malformed_rate, reinforcement_finetune

    cached = workdir / f"stage0_s{seed}_{cache_key(cfg, seed, {'lrs': lrs, 'tok': tokenizers})}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    tasks = cfg.continual.base_tasks
    variants = []
    stages, base = prepare_protocol(cfg, workdir, seed)
    for lr in tqdm(lrs, desc="stage-0 lr sweep", leave=False):
        policy = copy.deepcopy(base)
        history = reinforcement_finetune(policy, stages[0], cfg.rft.model_copy(update={"lr": lr, "seed": seed}),
                                         desc=f"GRPO lr {lr:g}")
        variants.append({"label": f"GRPO lr {lr:g}", "tokenizer": "config", "lr": lr,
                         "success": {t: evaluate_policy(policy, t, cfg.continual.eval_episodes).tolist()
                                     for t in tasks},
                         "malformed_rate": malformed_rate(policy, stages[0], cfg.rft.temperature, seed=seed),
                         "grpo": {k: float(np.nanmean([h[k] for h in history[-max(1, len(history) // 10):]]))
                                  for k in DIAGNOSTICS}})
    for kind in tokenizers:
        tok = {"kind": kind, "bins": 255} if kind == "bin" else {"kind": "fast", "scale": 10.0, "bpe_vocab_size": 256}
        policy_cfg = copy.deepcopy(cfg.policy)
        policy_cfg.setdefault("tokenized", {})["tokenizer"] = tok
        other = cfg.model_copy(update={"policy": policy_cfg})
        stages, policy = prepare_protocol(other, workdir, seed)
        variants.append({"label": f"SFT base, {kind} tokenizer", "tokenizer": tok, "lr": None,
                         "success": {t: evaluate_policy(policy, t, cfg.continual.eval_episodes).tolist()
                                     for t in tasks},
                         "malformed_rate": malformed_rate(policy, stages[0], cfg.rft.temperature, seed=seed),
                         "tokens_per_chunk": float(np.mean([len(policy.tokenizer.encode(chunk)) for chunk in
                                                            policy.normalizer.normalize_actions(
                                                                torch.as_tensor(stages[0].chunks)).numpy()]))})
    cached.write_text(json.dumps(variants))
    return variants


def long_rows(runs: list[dict], variants: list[dict]) -> list[dict]:
    """docs/results/lifelong_rft.json rows: FWT / NBT / AUC in points (as in the paper), rates as fractions."""
    rows = []
    for run in runs:
        for m in METHODS:
            base = {"method": m, "seed": run["seed"]}
            rows += [dict(base, metric=k.upper(), value=round(100 * run[m]["metrics"][k], 2))
                     for k in ("fwt", "nbt", "auc")]
            rows.append(dict(base, metric="malformed_rate", value=run[m]["malformed_rate"]))
            outcomes = np.asarray(run[m]["outcomes"])
            for q, per_task in enumerate(outcomes):
                for k, task in enumerate(run["tasks"]):
                    if per_task[k][0] < 0:
                        continue
                    rows.append(dict(base, metric="success", stage=q, task=task, value=float(np.mean(per_task[k]))))
                    rows += [dict(base, metric="outcome", stage=q, task=task, episode=EVAL_SEED + i, value=int(v))
                             for i, v in enumerate(per_task[k])]
    for v in variants:
        base = {"method": v["label"], "seed": runs[0]["seed"]}
        rows += [dict(base, metric="success", stage=0, task=t, value=float(np.mean(o)))
                 for t, o in v["success"].items()]
        rows.append(dict(base, metric="malformed_rate", value=v["malformed_rate"]))
    return rows


def cell(outcomes: np.ndarray) -> str:
    """Success in % over every seed's episodes with the Wilson interval."""
    e = wilson(int(outcomes.sum()), outcomes.size)
    return f"{100 * e.mean:.0f} [{100 * e.low:.0f}, {100 * e.high:.0f}]"


def points(e) -> str:
    return f"{100 * e.mean:.1f}" + (f" [{100 * e.low:.1f}, {100 * e.high:.1f}]" if e.n > 1 else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "config" / "rft.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lr-sweep", type=float, nargs="*", default=[], help="stage-0 GRPO learning rates (first seed)")
    parser.add_argument("--tokenizers", nargs="*", default=[], choices=("bin", "fast"),
                        help="other tokenizers' stage-0 SFT base (first seed)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override the config")
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "bench_lifelong_rft"), help="demos and runs")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from robot_rl.core.yaml_config import apply_sets
    from robot_rl.rl.continual import RFTFileConfig

    torch.set_num_threads(1)
    cfg = RFTFileConfig.load(args.config)
    if args.set:
        cfg = RFTFileConfig.model_validate(apply_sets(cfg.model_dump(), args.set))
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    runs = [run_seed(cfg, workdir, seed) for seed in tqdm(args.seeds, desc="seeds")]
    variants = stage0_variants(cfg, workdir, args.seeds[0], args.lr_sweep, args.tokenizers) \
        if args.lr_sweep or args.tokenizers else []
    minutes = (time.monotonic() - start) / 60
    compute_minutes = sum(r["wall_s"] for r in runs) / 60
    tasks, c = runs[0]["tasks"], cfg.continual
    learned_at = [0] * len(c.base_tasks) + list(range(1, len(c.new_tasks) + 1))
    outcomes = {m: np.array([r[m]["outcomes"] for r in runs]) for m in METHODS}  # (seeds, stages, tasks, episodes)

    stage_names = ["0: " + " + ".join(c.base_tasks)] + [f"{i + 1}: + {t}" for i, t in enumerate(c.new_tasks)]
    rows = []
    for m in METHODS:
        for q, name in enumerate(stage_names):
            rows.append([m.upper(), name] + [cell(outcomes[m][:, q, k]) if learned_at[k] <= q else ""
                                             for k in range(len(tasks))])
    matrix_table = markdown_table(["method", "after stage", *tasks], rows)

    metric_rows = []
    for m in METHODS:
        cells = [points(mean_interval([r[m]["metrics"][k] for r in runs])) for k in ("fwt", "nbt", "auc")]
        dips = [outcomes[m][s, q, k].mean() - outcomes[m][s, learned_at[k], k].mean()
                for s in range(len(runs)) for k in range(len(tasks)) for q in range(learned_at[k] + 1, len(stage_names))]
        malformed = np.mean([r[m]["malformed_rate"] for r in runs])
        metric_rows.append([m.upper(), *cells, f"{100 * min(dips):+.0f}", f"{100 * malformed:.1f}",
                            "{:.1f} / {:.1f} / {:.1f}".format(*PAPER[m])])
    metric_table = markdown_table(["method", "FWT ↑", "NBT ↓", "AUC ↑", "worst dip (points)", "malformed %",
                                   "paper, LIBERO mean (FWT / NBT / AUC)"], metric_rows)
    diff = {k: paired_difference(np.array([r["rft"]["episode_metrics"][k] for r in runs]),
                                 np.array([r["sft"]["episode_metrics"][k] for r in runs])) for k in ("fwt", "nbt", "auc")}
    met = diff["auc"].mean >= 0.10 and diff["auc"].low > 0 and diff["nbt"].mean <= 0
    base_success = outcomes["sft"][:, 0, :len(c.base_tasks)].mean(axis=(0, 2))
    verdict = (f"Target (RFT AUC ≥ SFT AUC + 10 points with the interval excluding 0, RFT NBT ≤ SFT NBT): "
               f"**{'met' if met else 'missed'}**. Base tasks after stage-0 SFT: "
               + ", ".join(f"{t} {100 * v:.0f} %" for t, v in zip(c.base_tasks, base_success))
               + " (target ≥ 70 %).")
    per_seed_gain = ", ".join(f"{100 * (r['rft']['metrics']['auc'] - r['sft']['metrics']['auc']):+.1f}" for r in runs)

    first = [h for h in runs[0]["rft"]["histories"][0]]
    k = max(1, len(first) // 10)
    grpo_line = ", ".join(f"{n} {np.nanmean([h[n] for h in first[:k]]):.3f} → {np.nanmean([h[n] for h in first[-k:]]):.3f}"
                          for n in DIAGNOSTICS)
    variant_table = ""
    if variants:
        base_row = ["SFT base (the protocol's)", "–"] + [cell(outcomes["sft"][:1, 0, j]) for j in range(len(c.base_tasks))]
        vrows = [base_row + [f"{100 * runs[0]['sft']['malformed_rate']:.1f}", "–"],
                 [f"GRPO lr {cfg.rft.lr:g} (the protocol's)", f"{cfg.rft.lr:g}",
                  *[cell(outcomes["rft"][:1, 0, j]) for j in range(len(c.base_tasks))],
                  f"{100 * runs[0]['rft']['malformed_rate']:.1f}", "stage 0 of the RFT run above"]]
        for v in variants:
            extra = (f"MDPR {v['grpo']['mdpr']:.3f}, clip {v['grpo']['clip_frac']:.3f}, KL {v['grpo']['kl']:.4f}"
                     if v["lr"] is not None else f"{v['tokens_per_chunk']:.1f} tokens per chunk")
            vrows.append([v["label"], f"{v['lr']:g}" if v["lr"] is not None else "–",
                          *[cell(np.asarray(v["success"][t])) for t in c.base_tasks],
                          f"{100 * v['malformed_rate']:.1f}", extra])
        variant_table = markdown_table(["stage 0, seed %d" % runs[0]["seed"], "GRPO lr", *c.base_tasks, "malformed %",
                                        "last 10 % of GRPO / tokenizer"], vrows)
    if not args.no_write:
        plot_rft_curves(runs[0]["rft"]["histories"], ROOT / CURVES)
        write_results("lifelong_rft", long_rows(runs, variants))

    p, r, tok = cfg.policy, cfg.rft, cfg.policy.get("tokenized", {}).get("tokenizer", {})
    command = (f"python -m bench.lifelong_rft --seeds {' '.join(map(str, args.seeds))}"
               + (f" --lr-sweep {' '.join(f'{x:g}' for x in args.lr_sweep)}" if args.lr_sweep else "")
               + (f" --tokenizers {' '.join(args.tokenizers)}" if args.tokenizers else "")
               + "".join(f" --set {s}" for s in args.set))
    markdown = f"""## LifeLong-RFT: continual learning on the sim tasks, RFT vs SFT

`{command}` ({minutes:.0f} min this call, reusing the cached runs under the workdir; the seeds' runs took {compute_minutes:.0f} min). {machine_line()}

Protocol (robot_rl/rl/continual.py, config/rft.yaml): stage 0 trains {', '.join(c.base_tasks)} on {c.base_episodes}
noisy-expert demos each (noise {c.demo_noise}, collect_sim with the object/goal state); then {', '.join(c.new_tasks)}
arrive one at a time with {round(c.new_fraction * c.base_episodes)} demos each plus {c.replay_episodes} replayed demos of
every earlier task (stage sizes in samples: {runs[0]['stage_sizes']}). Both methods start from one shared stage-0 SFT
policy per seed ({cfg.sft.steps} steps, batch {cfg.sft.batch_size}) and use the same demos, replay picks and evaluation
episodes. SFT: {c.stage_sft_steps} SFT steps per new stage. RFT: GRPO with MDPR in every stage ({r.iterations}
iterations × {r.batch_size} states × G {r.group_size}, {r.epochs} epochs × {r.minibatches} minibatches per rollout batch,
lr {r.lr:g}, τ {r.temperature:g}, KL {r.kl_coef:g}), after {c.rft_warmup_sft_steps} SFT warm-up steps in the new stages.
Policy: tokenized {p.get('tokenized', {}).get('arch', 'llama')} LM width {p.get('hidden_dim')} depth {p.get('depth')},
tokenizer {json.dumps(tok)}, H = {p.get('horizon', 5)}; constrained decoding everywhere, greedy in evaluation.
Success in % over {c.eval_episodes} sim episodes per task and seed (episodes {EVAL_SEED}..{EVAL_SEED + c.eval_episodes - 1}),
pooled over seeds {args.seeds}, with the Wilson 95 % interval. Numbers: docs/results/lifelong_rft.json.

{matrix_table}

FWT / NBT / AUC in points, mean over seeds with the 95 % t interval; worst dip = the largest fall of a task below its
first evaluation, over seeds, tasks and later stages; malformed = completions that do not decode, sampled at τ
{r.temperature:g} and greedily on each stage's demo states after every stage.

{metric_table}

RFT − SFT, paired bootstrap over seeds and episodes (95 %): AUC **{diff['auc'].points()}** points (per seed
{per_seed_gain}; the paper: +21.9 on LIBERO with a 3B VLA), FWT {diff['fwt'].points()}, NBT {diff['nbt'].points()}.
{verdict}

Stage-0 GRPO of the first seed, first → last 10 % of iterations: {grpo_line}.
Curves: [{CURVES}](lifelong_rft_rewards.png).
"""
    if variant_table:
        markdown += f"\n{variant_table}\n"
    print(markdown)
    if not args.no_write:
        write_section("lifelong_rft", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
