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


def load_object(spec: str, what: str):
    """`module:name` -> the object (a user's env factory or action adapter), with an error that names `spec`."""
    import importlib

    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{what} {spec!r}: cannot load it ({err}); give module:name on the Python path") from None


def make_env(args):
    """The env and the adapter from one raw policy action to its action: a project task (`--task`, normalised EE
    deltas), a registered gymnasium id or a `module:factory` (`--env`, identity unless `--action-adapter`). A foreign
    env must return dict observations with "state" (and "environment_state" for policies that use it) and report
    `info["success"]`; its factory is the place to adapt them."""
    import gymnasium as gym
    import numpy as np

    if not args.env:
        from robot_rl.sim.gym_env import PandaTaskEnv, normalise_ee_delta

        return PandaTaskEnv(args.task, max_steps=args.max_steps), normalise_ee_delta
    if ":" in args.env:
        env = load_object(args.env, "--env")()
    else:
        try:
            env = gym.make(args.env, max_episode_steps=args.max_steps)
        except gym.error.Error as err:
            raise ValueError(f"--env {args.env!r}: {err}") from None
    space = env.observation_space
    if not isinstance(space, gym.spaces.Dict) or "state" not in space.spaces:
        raise ValueError(f"--env {args.env!r}: observations must be a dict with a 'state' entry (the policy's state "
                         f"vector), got {space}; adapt them in a module:factory")
    adapter = load_object(args.action_adapter, "--action-adapter") if args.action_adapter else np.asarray
    return env, adapter


def cmd_finetune_gym(args) -> int:
    from robot_rl.core.stats import wilson
    from robot_rl.core.yaml_config import apply_sets
    from robot_rl.rl.config import POCOConfig
    from robot_rl.rl.online import OnlineConfig, finetune_checkpoint

    try:
        sets = apply_sets({"poco": {"mode": args.mode}}, args.set)
        if unknown := sorted(set(sets) - {"poco"}):
            raise ValueError(f"--set: unknown section(s) {unknown}; finetune-gym takes poco.KEY=VALUE")
        cfg = POCOConfig.model_validate(sets["poco"])
        env, to_env_action = make_env(args)
    except ValueError as err:  # pydantic's ValidationError is a ValueError and names the key
        print(f"robot-rl finetune-gym: {err}", file=sys.stderr)
        return 2
    online = OnlineConfig(env_steps=args.env_steps, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                          seed=args.seed)
    try:
        curve = finetune_checkpoint(args.checkpoint, args.dataset, env, cfg, online, args.out, to_env_action)
    except ValueError as err:   # an env that does not fit the policy
        print(f"robot-rl finetune-gym: {err}", file=sys.stderr)
        return 2
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
    f.add_argument("--task", default="pick_lift", help="a project task (robot_rl.sim), unless --env is given")
    f.add_argument("--env", default="", help="your own env: a registered gymnasium id or module:factory (dict "
                                             "observations with 'state', info['success'])")
    f.add_argument("--action-adapter", default="", metavar="module:function",
                   help="maps one raw policy action to the env's action (default: identity for --env)")
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
