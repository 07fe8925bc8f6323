"""LifeLong-RFT vs SFT in the continual protocol on the sim tasks (robot_rl/rl/continual.py).

Both methods start from the same stage-0 SFT policy and see the same demos, replay picks and evaluation seeds; the
table gives the success matrix after every stage and FWT / NBT / AUC. State observations (robot + object/goal
state), a small tokenized policy on one CPU thread: minutes, not the paper's scale.

    python -m bench.lifelong_rft [--seeds 0] [--config config/rft.yaml]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bench.report import ROOT, machine_line, markdown_table, write_section

# The paper's continual LIBERO results (FWT / NBT / AUC, %), SFT → LifeLong-RFT, mean of Object/Spatial/Goal/Long.
PAPER = {"sft": (75.35, 15.83, 63.28), "rft": (89.15, 5.28, 85.20)}
CURVES = "docs/lifelong_rft_rewards.png"


def plot_rft_curves(histories: list[list[dict]], path: Path) -> None:
    """MDPR terms over the GRPO iterations of every stage, stages back to back."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = [h for stage in histories for h in stage]
    bounds = np.cumsum([len(stage) for stage in histories])[:-1]
    window = max(1, len(history) // 60)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name in ("qacr", "ctar", "fcr", "mdpr"):
        values = np.asarray([h[name] for h in history])
        ax.plot(np.arange(window - 1, len(values)), np.convolve(values, np.ones(window) / window, mode="valid"),
                label=name.upper())
    for b in bounds:
        ax.axvline(b, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("GRPO iteration (dotted: next continual stage)")
    ax.set_ylabel("mean reward term of the sampled groups")
    ax.set_title("LifeLong-RFT on the sim tasks: MDPR terms")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "config" / "rft.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "bench_lifelong_rft"), help="demo cache")
    args = parser.parse_args(argv)

    import torch

    from robot_rl.rl.continual import RFTFileConfig, run_protocol

    torch.set_num_threads(1)
    cfg = RFTFileConfig.load(args.config)
    start = time.monotonic()
    runs = [run_protocol(cfg, args.workdir, seed) for seed in args.seeds]
    minutes = (time.monotonic() - start) / 60
    tasks, c = runs[0]["tasks"], cfg.continual

    stage_names = ["0: " + " + ".join(c.base_tasks)] + [f"{i + 1}: + {t}" for i, t in enumerate(c.new_tasks)]
    rows = []
    for method in ("sft", "rft"):
        mean = np.mean([r[method]["matrix"] for r in runs], axis=0)
        for q, name in enumerate(stage_names):
            rows.append([method.upper(), name] + [f"{100 * v:.0f}" if v == v else "" for v in mean[q]])
    matrix_table = markdown_table(["method", "after stage", *tasks], rows)

    metric_rows = []
    for method in ("sft", "rft"):
        per_seed = {k: [r[method]["metrics"][k] for r in runs] for k in ("fwt", "nbt", "auc")}
        cells = [f"{100 * np.mean(v):.1f}" + (f" ± {100 * np.std(v):.1f}" if len(v) > 1 else "")
                 for v in per_seed.values()]
        paper = "{:.1f} / {:.1f} / {:.1f}".format(*PAPER[method])
        metric_rows.append([method.upper(), *cells, paper])
    gain = 100 * np.mean([r["rft"]["metrics"]["auc"] - r["sft"]["metrics"]["auc"] for r in runs])
    metric_table = markdown_table(["method", "FWT ↑", "NBT ↓", "AUC ↑", "paper, LIBERO mean (FWT / NBT / AUC)"],
                                  metric_rows)

    plot_rft_curves(runs[0]["rft"]["histories"], ROOT / CURVES)
    first_stage = runs[0]["rft"]["histories"][0]
    k = max(1, len(first_stage) // 10)
    reward_line = ", ".join(f"{n.upper()} {np.mean([h[n] for h in first_stage[:k]]):.2f} → "
                            f"{np.mean([h[n] for h in first_stage[-k:]]):.2f}" for n in ("qacr", "ctar", "fcr", "mdpr"))
    policy = cfg.policy
    tok = policy.get("tokenized", {}).get("tokenizer", {})
    markdown = f"""## LifeLong-RFT: continual learning on the sim tasks, RFT vs SFT

`python -m bench.lifelong_rft --seeds {' '.join(map(str, args.seeds))}` ({minutes:.1f} min). {machine_line()}

Protocol (robot_rl/rl/continual.py, config/rft.yaml): stage 0 trains {', '.join(c.base_tasks)} on {c.base_episodes}
noisy-expert demos each (noise {c.demo_noise}, collect_sim with the object/goal state); then {', '.join(c.new_tasks)}
arrive one at a time with {round(c.new_fraction * c.base_episodes)} demos each ({c.new_fraction:.0%} of a base task's data)
plus {c.replay_episodes} replayed demos of every earlier task (stage sizes in samples: {runs[0]['stage_sizes']}).
Both methods start from one shared stage-0 SFT policy ({cfg.sft.steps} steps) and use the same demos, replay picks and
seeds. SFT: {c.stage_sft_steps} SFT steps per new stage. RFT: GRPO with MDPR ({cfg.rft.iterations} iterations × batch
{cfg.rft.batch_size} × G {cfg.rft.group_size}) in every stage, after {c.rft_warmup_sft_steps} SFT warm-up steps in the
new stages. Policy: tokenized, {policy.get('tokenized', {}).get('arch', 'llama')} LM width {policy.get('hidden_dim')}
depth {policy.get('depth')}, {tok.get('kind', 'fast')} tokenizer (BPE vocab {tok.get('bpe_vocab_size', 0)}), H =
{policy.get('horizon', 5)}, greedy decoding in evaluation. Success rates in % over {c.eval_episodes} sim episodes per task
(fixed seeds), mean over seeds {args.seeds}.

{matrix_table}

{metric_table}

RFT − SFT AUC: **{gain:+.1f}** points (the paper: +21.9 on LIBERO with a 3B VLA). Stage-0 GRPO reward terms, first → last
10 % of iterations: {reward_line}. Curves: [{CURVES}](lifelong_rft_rewards.png).
"""
    print(markdown)
    write_section("lifelong_rft", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
