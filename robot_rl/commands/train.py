"""`robot-rl pretrain` and `robot-rl finetune-gym`: behaviour cloning from a LeRobot v3 dataset, and POCO (or a
baseline) on the gymnasium envs without ROS."""
from __future__ import annotations

import argparse
import sys


def cmd_pretrain(args) -> int:
    from robot_rl.rl.pretrain import pretrain

    spec = {"type": args.type, "horizon": args.horizon, "execute_steps": args.execute_steps or args.horizon,
            "hidden_dim": args.hidden_dim, "cameras": args.cameras, "image_size": args.image_size}
    pretrain(args.dataset, spec, args.steps, args.out, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    print(f"checkpoint, bc_loss.png and tensorboard/ written to {args.out}")
    return 0


def cmd_finetune_gym(args) -> int:
    from robot_rl.core.stats import wilson
    from robot_rl.core.yaml_config import apply_sets
    from robot_rl.rl.config import POCOConfig
    from robot_rl.rl.online import OnlineConfig, finetune_checkpoint
    from robot_rl.sim.gym_env import PandaTaskEnv, normalise_ee_delta

    try:
        sets = apply_sets({"poco": {"mode": args.mode}}, args.set)
        if unknown := sorted(set(sets) - {"poco"}):
            raise ValueError(f"--set: unknown section(s) {unknown}; finetune-gym takes poco.KEY=VALUE")
        cfg = POCOConfig.model_validate(sets["poco"])
    except ValueError as err:  # pydantic's ValidationError is a ValueError and names the key
        print(f"robot-rl finetune-gym: {err}", file=sys.stderr)
        return 2
    online = OnlineConfig(env_steps=args.env_steps, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                          seed=args.seed)
    curve = finetune_checkpoint(args.checkpoint, args.dataset, PandaTaskEnv(args.task, max_steps=args.max_steps),
                                cfg, online, args.out, normalise_ee_delta)
    for steps, outcomes, metrics in zip(curve.env_steps, curve.outcomes, curve.metrics):
        print(f"env steps {steps:>6}: success {wilson(int(outcomes.sum()), len(outcomes))}  q_clip_ratio "
              f"{metrics.get('q_clip_ratio', float('nan')):.2f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="behaviour cloning of a chunk policy from a LeRobot v3 dataset")
    p.add_argument("dataset", help="LeRobot v3 dataset root")
    p.add_argument("--out", required=True, help="checkpoint directory")
    p.add_argument("--type", default="flow", choices=["flow", "diffusion"])
    p.add_argument("--horizon", type=int, default=5, help="chunk length H")
    p.add_argument("--execute-steps", type=int, default=0, help="points executed per chunk (default H)")
    p.add_argument("--hidden-dim", type=int, default=256)
    p.add_argument("--cameras", nargs="*", default=[], help="image observations, e.g. front wrist")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_pretrain)

    f = sub.add_parser("finetune-gym", help="POCO (or a baseline) on a gymnasium env, without ROS")
    f.add_argument("checkpoint", help="pretrained policy directory")
    f.add_argument("--task", default="pick_lift")
    f.add_argument("--dataset", default="", help="offline demonstrations kept in the replay store")
    f.add_argument("--mode", default="poco", choices=["poco", "bc", "best_of_n", "actor_gradient"])
    f.add_argument("--set", action="append", default=[], metavar="poco.KEY=VALUE",
                   help="a POCOConfig setting (robot_rl/rl/config.py), e.g. --set poco.num_candidates=16")
    f.add_argument("--env-steps", type=int, default=3000)
    f.add_argument("--eval-every", type=int, default=1000)
    f.add_argument("--eval-episodes", type=int, default=20)
    f.add_argument("--max-steps", type=int, default=200)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", required=True)
    f.set_defaults(func=cmd_finetune_gym)
