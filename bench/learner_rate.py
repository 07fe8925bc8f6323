"""Learner update rate: POCO with N candidates against the BC+critic update, on the demo's configuration.

Every mode runs `POCOLearner.update` on the same ChunkBatch (sampled once from a ReplayStore of random episodes),
from the same initial policy, with warm-up off so the posterior / actor-gradient term is active from the first
update. Modes are interleaved update by update, so load from other processes hits them alike.

    python -m bench.learner_rate [--updates 50]
"""
from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np
from tqdm import tqdm

from bench.report import machine_line, markdown_table, write_section


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=50, help="timed updates per mode")
    parser.add_argument("--warmup", type=int, default=5, help="untimed updates per mode first")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--candidates", type=int, nargs="+", default=[8, 16, 32], help="POCO's N values")
    args = parser.parse_args(argv)

    import torch

    from robot_rl.rl.distributed import demo_learner_setup
    from robot_rl.rl.poco import POCOConfig, POCOLearner

    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    prior, _, store = demo_learner_setup(args.batch_size)
    spec = prior.spec
    demo_n = POCOConfig().num_candidates  # the default, as in the demo
    modes = {"bc (critic + BC)": dict(mode="bc"),
             **{f"poco N={n}": dict(mode="poco", num_candidates=n) for n in args.candidates},
             f"best_of_n N={demo_n}": dict(mode="best_of_n", num_candidates=demo_n),
             "actor_gradient": dict(mode="actor_gradient")}
    learners = {name: POCOLearner(copy.deepcopy(prior), POCOConfig(batch_size=args.batch_size, warmup_updates=0,
                                                                   **kw), seed=0)
                for name, kw in modes.items()}
    batch = store.sample(args.batch_size, np.random.default_rng(0))
    obs = {"state": torch.as_tensor(batch.states[:1])}

    update_ms = {name: [] for name in modes}
    act_ms = {name: [] for name in modes}
    for i in tqdm(range(args.warmup + args.updates), desc="learner updates (all modes)", unit="round"):
        for name, learner in learners.items():
            t0 = time.perf_counter()
            learner.update(batch)
            t1 = time.perf_counter()
            learner.act(obs)  # what the learner's mode costs at acting time (best_of_n ranks N samples)
            t2 = time.perf_counter()
            if i >= args.warmup:
                update_ms[name].append(1000 * (t1 - t0))
                act_ms[name].append(1000 * (t2 - t1))

    bc = np.median(update_ms["bc (critic + BC)"])
    rows = []
    for name in modes:
        p50 = float(np.median(update_ms[name]))
        rows.append([name, len(update_ms[name]), f"{p50:.1f}", f"{np.percentile(update_ms[name], 90):.1f}",
                     f"{1000 / p50:.1f}", f"{p50 / bc:.2f}×", f"{np.median(act_ms[name]):.2f}"])
    ns = np.asarray(args.candidates, dtype=float)
    poco = np.asarray([np.median(update_ms[f"poco N={n}"]) for n in args.candidates])
    # POCO's extra cost grows linearly in N (N samples of 10 flow steps + the loss on B·N chunks): ms = a + b·N.
    slope = np.polyfit(ns, poco, 1)[0] if len(ns) > 1 else float("nan")
    table = markdown_table(["mode", "n", "ms / update p50", "p90", "updates/s (p50)", "ratio to bc",
                            "act() p50 (ms, batch 1)"], rows)
    text = (f"`POCOLearner.update` on one fixed batch of {args.batch_size} chunks from a ReplayStore of random "
            f"episodes, the demo's configuration: flow-matching policy (hidden 128, depth 3, 10 flow steps, horizon "
            f"5, EE-space actions, {spec.state_dim}-D state with the environment state), critic ensemble of 2 MLPs (256 wide, "
            f"depth 3), warm-up off so every update carries the mode's actor term; one torch thread, modes "
            f"interleaved update by update. *bc* = the critic TD update plus the BC actor loss; *poco N* adds the "
            f"E-step (N policy samples, ranked by the target critic) and the clipped M-step loss on all B·N "
            f"candidates; *best_of_n* trains like bc and pays for N at acting time (last column); *actor_gradient* "
            f"backpropagates −Q through the flow sampler.\n\n{table}\n\n"
            f"Linear fit over the POCO rows: each candidate adds {slope:.1f} ms per update at batch "
            f"{args.batch_size}.\n\n"
            f"Command: `python -m bench.learner_rate --updates {args.updates} --warmup {args.warmup} "
            f"--batch-size {args.batch_size} --candidates {' '.join(map(str, args.candidates))}`. {machine_line()} "
            f"1-min load average before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}.\n")
    print(text)
    write_section("learner_rate", "## Learner update rate: POCO vs BC+critic\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
