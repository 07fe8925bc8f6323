"""The learning benches' shared table: runs of several methods from the same priors, evaluated on the same episode
seeds, summarised with 95 % intervals (t over seeds for means, paired bootstrap for differences), written in the long
results format and plotted as success against env steps. A run is a dict {seed, mode, env_steps, metrics, outcomes,
wall_s}: `mode` is a method or an ablation's label, `outcomes` each evaluation's per-episode successes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.report import markdown_table
from robot_rl.core.stats import mean_interval, paired_difference, wilson
from robot_rl.core.types import EVAL_SEED

MODES = ("poco", "bc", "best_of_n", "actor_gradient")
RATE = (0.0, 1.0)  # success rates: intervals cut to [0, 1]


def variants(modes: list[str], sets: list[str], ablate: list[str]) -> list[tuple[str, list[str]]]:
    """(label, poco.KEY=VALUE settings) per learner: each mode with `sets`, and each `LABEL:SETS[,...]` ablation
    (POCO with those settings too)."""
    out = [(mode, list(sets)) for mode in modes]
    return out + [(label, list(sets) + more.split(",")) for label, _, more in (a.partition(":") for a in ablate)]


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
        rows += [dict(base, metric="outcome", env_steps=s, episode=EVAL_SEED + i, value=int(v))
                 for s, outcomes in zip(r["env_steps"], r["outcomes"]) for i, v in enumerate(outcomes)]
    return rows


def final_outcomes(results_file: Path) -> dict[tuple[str, int], np.ndarray]:
    """(method, seed) -> the final evaluation's outcomes, ordered by episode, from a results file of this bench."""
    rows = [r for r in json.loads(Path(results_file).read_text())["rows"]
            if r["metric"] in ("outcome", "final_outcome")]
    last: dict = {}
    for row in rows:
        key = (row["method"], row["seed"])
        last[key] = max(last.get(key, -1), row.get("env_steps", -1))
    episodes: dict = {}
    for row in rows:
        if row.get("env_steps", -1) == last[(row["method"], row["seed"])]:
            episodes.setdefault((row["method"], row["seed"]), {})[row["episode"]] = row["value"]
    return {key: np.array([v for _, v in sorted(eps.items())]) for key, eps in episodes.items()}


def finite_mean(values) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summary_table(runs: list[dict], modes: list[str], compare: dict | None = None) -> str:
    """Per method: prior, final and worst evaluation (mean over seeds, t interval), the change from the prior and the
    difference to BC-only, or to each method of `compare` (paired bootstrap over seeds and episodes), the learner's
    diagnostics."""
    by = {(r["mode"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    references = {m: np.array([by[(m, s)]["outcomes"][-1] for s in seeds]) for m in ("bc",) if m in modes}
    compared = {m for m, _ in compare or {}}
    for method in sorted(compared):
        references[method] = np.array([compare[(method, s)] for s in seeds])
    table = []
    for mode in modes:
        own = [by[(mode, s)] for s in seeds]
        first = np.array([r["outcomes"][0] for r in own])
        final = np.array([r["outcomes"][-1] for r in own])
        worst = [min(np.mean(o) for o in r["outcomes"]) for r in own]
        versus = [paired_difference(final, ref).points() if not (mode == m and m not in compared) else "–"
                  for m, ref in references.items()]  # a method against itself only across two runs
        metrics = [m for r in own for m in r["metrics"][1:]]
        ess, clip = (finite_mean([m.get(name, np.nan) for m in metrics]) for name in ("weight_ess", "q_clip_ratio"))
        table.append([mode, str(mean_interval(first.mean(1), RATE)), str(mean_interval(final.mean(1), RATE)),
                      f"{min(worst):.2f}", paired_difference(final, first).points(), *versus,
                      f"{ess:.1f}" if np.isfinite(ess) else "–", f"{clip:.2f}" if np.isfinite(clip) else "–"])
    return markdown_table(["method", "prior (step 0)", "final", "worst evaluation", "change (points)",
                           *(f"vs {m} (points)" for m in references), "weight ESS", "q_clip_ratio"], table)


def plot(runs: list[dict], modes: list[str], path: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode in modes:
        own = [r for r in runs if r["mode"] == mode]
        steps = own[0]["env_steps"]
        per_seed = np.array([[np.mean(o) for o in r["outcomes"]] for r in own])   # (seeds, evaluations)
        if len(own) > 1:
            bands = [mean_interval(per_seed[:, k], RATE) for k in range(len(steps))]
        else:
            bands = [wilson(int(np.sum(o)), len(o)) for o in own[0]["outcomes"]]
        ax.plot(steps, per_seed.mean(0), marker="o", label=mode)
        ax.fill_between(steps, [max(0, b.low) for b in bands], [min(1, b.high) for b in bands], alpha=0.15)
    ax.set(xlabel="env steps", ylabel="success", ylim=(-0.02, 1.02),
           title=f"{task}: mean of {len({r['seed'] for r in runs})} seeds, 95 % band")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
