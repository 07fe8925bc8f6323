"""The main job (`make demo`, `robot-rl demo`): scripted noisy demonstrations → behaviour-cloned flow prior →
POCO online through the full ROS graph → before/after success table and learning-curve PNG.

Every stage after pretraining runs as real ROS 2 processes over DDS (robot_rl.bringup): the prior and the final policy
are evaluated by the same graph on the same episode seeds, and fine-tuning runs config/graphs/sim_poco.yaml
(bridge, learned policy, sim reward, learner, episode manager). Outputs go to `--out` (default runs/demo).

The default observes state (robot + object pose) so the job fits 15 minutes on 2 CPU cores; config/demo_images.yaml
runs the same job on camera images (`robot-rl demo --config config/demo_images.yaml`; meant for a GPU machine).
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from robot_rl.core.stats import Estimate, paired_difference, wilson
from robot_rl.core.types import DEMO_POLICY, EVAL_SEED, TASK_MAX_STEPS
from robot_rl.core.yaml_config import load_yaml_model
from robot_rl.rl.config import POCOConfig



class DemoConfig(BaseModel):
    """The main job's settings (`robot-rl demo --config FILE`; flags override the file)."""

    model_config = ConfigDict(extra="forbid")
    task: str = "pick_lift"
    demo_episodes: int = Field(30, ge=1)
    demo_noise: float = Field(0.3, ge=0, description="scripted-expert noise: the prior imitates sloppy demos")
    bc_steps: int = Field(8000, ge=1)
    bc_batch_size: int = Field(256, ge=1)
    hidden_dim: int = Field(DEMO_POLICY["hidden_dim"], ge=8)
    cameras: list[str] = Field(default_factory=list, description="image observations, e.g. [front, wrist]; "
                                                                   "empty = state (robot + object pose)")
    image_size: int = Field(64, ge=16, description="camera frames are rendered at this size")
    online_episodes: int = Field(40, ge=1, description="about 5500 env steps on pick_lift: 15 (2000–2400) gained "
                                 "+8 to +28 points over seven runs, the gym bench needs about 6000 for +30")
    eval_episodes: int = Field(50, ge=1, description="per evaluation, on the same seeds before and after")
    max_steps: int = Field(200, ge=1)
    poco: POCOConfig = Field(default_factory=POCOConfig, description="the learner's settings; poco.mode bc or "
                                                                      "best_of_n runs a baseline on the same graph")
    seed: int = 0
    out: str = "runs/demo"
    graph_timeout_s: float = Field(1800.0, gt=0)
    verbose: bool = False


def load_demo_config(path: str | Path | None, mode: str | None = None, sets: list[str] = (),
                     **overrides) -> DemoConfig:
    """DemoConfig from a YAML file (or the defaults), then `overrides` (None values ignored), `mode` (poco.mode) and
    `--set KEY=VALUE` items; errors name the file or the flag."""
    sets = ([f"poco.mode={mode}"] if mode else []) + list(sets)
    return load_yaml_model(DemoConfig, path, sets, **overrides)


def _camera_sets(cfg: DemoConfig, graph: str) -> list[str]:
    """Bridge parameters for the policy's observations: no rendering for state policies, else the policy's cameras
    at the policy's size, one frame per control tick (the learner pairs each state with its frames)."""
    from robot_rl.bringup import control_hz, load_graph

    if not cfg.cameras:
        return ["mujoco_bridge.camera_hz=0.0"]
    return [f"mujoco_bridge.camera_hz={control_hz(load_graph(graph))}",
            f"mujoco_bridge.camera_names=[{', '.join(cfg.cameras)}]",
            f"mujoco_bridge.camera_width={cfg.image_size}", f"mujoco_bridge.camera_height={cfg.image_size}"]


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _run(graph: str, sets: list[str], cfg: DemoConfig, what: str) -> None:
    from robot_rl.bringup import run_graph

    code = run_graph(graph, namespace=cfg.task, sets=sets, timeout=cfg.graph_timeout_s, quiet=not cfg.verbose)
    if code != 0:
        raise RuntimeError(f"{what}: the graph {graph} exited with code {code} (rerun with --verbose for node logs)")


def evaluate_in_graph(checkpoint: Path, results: Path, cfg: DemoConfig, extra: Sequence[str] = ()) -> list[dict]:
    """Episodes of a fixed policy through the ROS graph on the evaluation seeds (`extra`: more --set items, last)."""
    results.unlink(missing_ok=True)
    graph = "config/graphs/sim_eval.yaml"
    _run(graph,
         [f"mujoco_bridge.task={cfg.task}", f"mujoco_bridge.seed={EVAL_SEED}", f"policy.checkpoint={checkpoint}",
          f"episode_manager.num_episodes={cfg.eval_episodes}", f"episode_manager.max_steps={cfg.max_steps}",
          f"episode_manager.results_path={results}", *_camera_sets(cfg, graph), *extra], cfg,
         f"evaluating {checkpoint}")
    return _read_jsonl(results)


def finetune_in_graph(prior: Path, demos: Path, out: Path, cfg: DemoConfig, extra: Sequence[str] = ()) -> list[dict]:
    results = out / "online_episodes.jsonl"
    results.unlink(missing_ok=True)
    graph = "config/graphs/sim_poco.yaml"
    # every key: the demo's POCOConfig, not the graph file's, is what runs; the step penalty has one source per
    # graph, the reward node, which the bringup passes on to the learner
    poco = cfg.poco.model_dump(exclude={"step_penalty"})
    _run(graph,
         [f"mujoco_bridge.task={cfg.task}", f"mujoco_bridge.seed={cfg.seed}", f"policy.checkpoint={prior}",
          f"learner.checkpoint={prior}", f"learner.dataset={demos}", f"learner.output_dir={out}",
          f"learner.seed={cfg.seed}", f"episode_manager.num_episodes={cfg.online_episodes}",
          f"episode_manager.max_steps={cfg.max_steps}", f"episode_manager.results_path={results}",
          f"reward.step_penalty={cfg.poco.step_penalty}", *_camera_sets(cfg, graph),
          *(f"learner.poco.{key}={value}" for key, value in poco.items()), *extra],
         cfg, f"{cfg.poco.mode} fine-tuning")
    return _read_jsonl(results)


def success_rate(episodes: list[dict]) -> float:
    return sum(e["outcome"] == "success" for e in episodes) / len(episodes) if episodes else float("nan")


def _rate(episodes: list[dict]) -> str:
    if not episodes:
        return "–"
    rate = wilson(sum(e["outcome"] == "success" for e in episodes), len(episodes))
    return f"{rate.mean:.0%} [{rate.low:.0%}, {rate.high:.0%}]"


def paired_change(before: list[dict], after: list[dict]) -> Estimate | None:
    """Success after minus before on the evaluation seeds both ran (bootstrap interval over those episodes)."""
    won = [{e["seed"]: e["outcome"] == "success" for e in run} for run in (before, after)]
    seeds = sorted(set(won[0]) & set(won[1]))
    if not seeds:
        return None
    return paired_difference([won[1][s] for s in seeds], [won[0][s] for s in seeds])


def plot_learning_curve(online: list[dict], learner_log: list[dict], before: float, after: float, path: Path,
                        title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    wins = np.array([e["outcome"] == "success" for e in online], dtype=float)
    window = max(1, min(5, len(wins)))
    fig, (ax, ax_q) = plt.subplots(1, 2, figsize=(10, 3.8))
    if len(wins):
        trailing = [wins[max(0, i - window + 1): i + 1].mean() for i in range(len(wins))]
        ax.plot(np.arange(1, len(wins) + 1), trailing, label=f"online episodes (mean of last {window})")
    ax.axhline(before, color="grey", ls="--", label=f"prior, eval {before:.0%}")
    ax.axhline(after, color="green", ls="--", label=f"fine-tuned, eval {after:.0%}")
    ax.set(xlabel="online episode", ylabel="success", ylim=(-0.05, 1.05), title=title)
    ax.legend(fontsize=8)
    if learner_log:
        ax_q.plot([r["episode"] for r in learner_log], [r.get("q_clip_ratio", float("nan")) for r in learner_log],
                  label="q_clip_ratio")
        ax_q.plot([r["episode"] for r in learner_log], [r.get("bc_loss", float("nan")) for r in learner_log],
                  label="BC loss")
        ax_q.set(xlabel="online episode", title="learner diagnostics")
        ax_q.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_demo(cfg: DemoConfig) -> dict:
    """The whole job; returns the summary that is also written to `<out>/summary.json`."""
    import torch

    from robot_rl.data.collect_sim import collect_demos
    from robot_rl.rl.pretrain import pretrain

    torch.set_num_threads(1)  # the graph's nodes share the machine's cores
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    demos, prior, learner_out = out / "demos", out / "bc", out / "learner"
    for stale in (demos, prior, learner_out):
        shutil.rmtree(stale, ignore_errors=True)
    timings = {}

    def stage(name: str, started: float) -> None:
        timings[name] = round(time.monotonic() - started, 1)
        print(f"[demo] {name} done in {timings[name]:.0f} s", flush=True)

    t = time.monotonic()
    print(f"[demo] 1/4 {cfg.demo_episodes} scripted demonstrations of {cfg.task} with noise {cfg.demo_noise}",
          flush=True)
    demo_summary = collect_demos(cfg.task, cfg.demo_episodes, cfg.demo_noise, cfg.seed, demos, cameras=cfg.cameras,
                                 image_size=cfg.image_size, max_steps=cfg.max_steps,
                                 environment_state=not cfg.cameras)  # camera policies see the object in images
    stage("demonstrations", t)

    t = time.monotonic()
    print(f"[demo] 2/4 behaviour cloning a flow-matching chunk policy ({cfg.bc_steps} steps)", flush=True)
    pretrain(demos, {**DEMO_POLICY, "hidden_dim": cfg.hidden_dim, "cameras": cfg.cameras,
                     "image_size": cfg.image_size}, cfg.bc_steps, prior,
             batch_size=cfg.bc_batch_size, seed=cfg.seed)
    stage("pretraining", t)

    t = time.monotonic()
    print(f"[demo] 3/4 evaluating the prior through the ROS graph ({cfg.eval_episodes} episodes)", flush=True)
    before = evaluate_in_graph(prior, out / "eval_prior.jsonl", cfg)
    stage("prior evaluation", t)

    t = time.monotonic()
    print(f"[demo] 4/4 {cfg.poco.mode} online through the ROS graph ({cfg.online_episodes} episodes: bridge, policy, "
          "reward, learner, episode manager)", flush=True)
    online = finetune_in_graph(prior, demos, learner_out, cfg)
    stage("online fine-tuning", t)

    t = time.monotonic()
    print(f"[demo] evaluating the fine-tuned policy on the same {cfg.eval_episodes} seeds", flush=True)
    after = evaluate_in_graph(learner_out / "checkpoint", out / "eval_finetuned.jsonl", cfg)
    stage("fine-tuned evaluation", t)

    learner_log = _read_jsonl(learner_out / "learner_log.jsonl")
    rate_before, rate_after = success_rate(before), success_rate(after)
    change = paired_change(before, after)
    online_steps = sum(e["steps"] for e in online)
    # the robot should not wait for the learner: wall time per env step online against evaluation alone
    per_step = {"online": timings["online fine-tuning"] / max(1, online_steps),
                "evaluation": timings["fine-tuned evaluation"] / max(1, sum(e["steps"] for e in after))}
    table = "\n".join([
        f"| policy ({cfg.task}, eval seeds {EVAL_SEED}..{EVAL_SEED + cfg.eval_episodes - 1}) | episodes | "
        "success [95 % interval] |",
        "|---|---|---|",
        f"| scripted expert with noise {cfg.demo_noise} (the demonstrations) | {cfg.demo_episodes} | "
        f"{demo_summary['success_rate']:.0%} |",
        f"| BC prior (flow matching) | {len(before)} | {_rate(before)} |",
        f"| after {cfg.poco.mode} ({len(online)} online episodes, {online_steps} env steps) | {len(after)} | "
        f"{_rate(after)} |",
        f"| change (paired on the same seeds, points) | {len(after)} | {change.points() if change else '–'} |",
    ])
    plot_learning_curve(online, learner_log, rate_before, rate_after, out / "learning_curve.png",
                        f"{cfg.poco.mode} on {cfg.task} through the ROS graph")
    summary = {"config": cfg.model_dump(), "success_prior": rate_before, "success_finetuned": rate_after,
               "change": change.__dict__ if change else None, "online_success": success_rate(online),
               "timings_s": timings, "wall_s_per_env_step": per_step,
               "online_over_evaluation": per_step["online"] / per_step["evaluation"], "table": table}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "success_table.md").write_text(table + "\n")
    print("\n" + table + f"\n\nwall time per env step: online {per_step['online'] * 1e3:.0f} ms, evaluation "
          f"{per_step['evaluation'] * 1e3:.0f} ms ({summary['online_over_evaluation']:.2f}x)"
          f"\nlearning curve: {out / 'learning_curve.png'}", flush=True)
    return summary


def success_table(results: dict[str, list[dict]]) -> str:
    lines = ["| task | episodes | successes | success rate | mean steps (successful) |", "|---|---|---|---|---|"]
    for task, episodes in results.items():
        wins = [e for e in episodes if e["outcome"] == "success"]
        mean_steps = sum(e["steps"] for e in wins) / len(wins) if wins else float("nan")
        lines.append(f"| {task} | {len(episodes)} | {len(wins)} | {success_rate(episodes):.0%} | {mean_steps:.1f} |")
    return "\n".join(lines)


def sim_check(tasks: list[str], episodes: int, out: str | Path, noise: float, timeout: float, quiet: bool) -> str:
    """The scripted expert through the sim graph (real processes, real DDS) on each task; returns the success table,
    also written to `<out>/success_table.md`."""
    from robot_rl.bringup import run_graph

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for task in tasks:
        start = time.monotonic()
        print(f"[sim-check] {task}: {episodes} episodes through the ROS graph "
              "(mujoco_bridge, policy, reward, episode_manager)", flush=True)
        path = out / f"{task}.jsonl"
        path.unlink(missing_ok=True)
        code = run_graph("config/graphs/sim_scripted.yaml", namespace=task, timeout=timeout, quiet=quiet,
                         sets=[f"mujoco_bridge.task={task}", f"policy.noise={noise}",
                               f"episode_manager.num_episodes={episodes}", f"episode_manager.max_steps={TASK_MAX_STEPS[task]}",
                               f"episode_manager.results_path={path}"])
        if code != 0:
            raise RuntimeError(f"the {task} graph exited with code {code}")
        results[task] = _read_jsonl(path)
        for e in results[task]:
            print(f"[sim-check]   episode {e['episode']} seed {e['seed']}: {e['outcome']} in {e['steps']} steps",
                  flush=True)
        print(f"[sim-check] {task} done in {time.monotonic() - start:.0f} s", flush=True)
    table = success_table(results)
    (out / "success_table.md").write_text(table + "\n")
    return table
