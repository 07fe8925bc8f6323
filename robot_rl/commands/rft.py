"""`robot-rl sft` and `robot-rl rft`: the tokenized chunk policy from LeRobot v3 datasets.

    robot-rl sft --dataset runs/data/reach [more roots] --out runs/sft            # new policy (config/rft.yaml)
    robot-rl rft --dataset runs/data/reach --checkpoint runs/sft --out runs/rft   # GRPO with MDPR, no environment
    accelerate launch -m robot_rl.cli rft ...                                     # the same on several GPUs

Both write a checkpoint directory the policy node serves (backend learned), a curve PNG and a JSON log.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _load_demos(args, horizon: int):
    from robot_rl.rl.lifelong_rft import Demos, load_demos

    return Demos.concat([load_demos(root, horizon, images=args.images, instruction=args.instruction)
                         for root in args.dataset])


def _check_action_names(roots: list[str], names: list[str]) -> None:
    from robot_rl.data.lerobot import DatasetError, LeRobotReader

    for root in roots:
        if LeRobotReader(root).action_names != names:
            raise DatasetError(f"{root}: actions {LeRobotReader(root).action_names} differ from {names}")


def cmd_sft(args) -> int:
    import torch

    from robot_rl.core.state import has_environment_state
    from robot_rl.data.lerobot import LeRobotReader
    from robot_rl.policies import PolicySpec, build_policy, load_policy, save_policy
    from robot_rl.policies.action_tokenizers import fit_tokenizer
    from robot_rl.policies.tokenized import TokenizedOptions
    from robot_rl.rl.continual import RFTFileConfig
    from robot_rl.rl.lifelong_rft import demo_normalizer, supervised_finetune
    from robot_rl.rl.pretrain import plot_curve

    torch.set_num_threads(args.threads)
    cfg = RFTFileConfig.load(args.config)
    sft_cfg = cfg.sft.model_copy(update={k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None})
    if args.init:
        policy, version = load_policy(args.init)
        if policy.spec.type != "tokenized":
            raise SystemExit(f"{args.init} holds a {policy.spec.type} policy; sft trains tokenized policies")
        _check_action_names(args.dataset, list(policy.spec.action_names))
        demos = _load_demos(args, policy.spec.horizon)
    else:
        reader = LeRobotReader(args.dataset[0])
        _check_action_names(args.dataset, reader.action_names)
        fields = {k: v for k, v in cfg.policy.items() if k != "tokenized"}
        demos = _load_demos(args, int(fields.get("horizon", 5)))
        normalizer = demo_normalizer(demos)
        options = TokenizedOptions.model_validate(cfg.policy.get("tokenized", {}))
        chunks = normalizer.normalize_actions(torch.as_tensor(demos.chunks)).numpy()
        options = options.model_copy(update={"tokenizer": fit_tokenizer(options.tokenizer, chunks)})
        spec = PolicySpec(type="tokenized", action_names=reader.action_names, state_dim=demos.states.shape[1],
                          environment_state=has_environment_state(reader.state_names), **fields,
                          tokenized=options.model_dump())
        policy, version = build_policy(spec, normalizer), -1
        if options.lm_path and args.pretrained:
            policy.load_pretrained_lm()
    print(f"[sft] {len(demos)} samples from {len(args.dataset)} dataset(s); tokenizer {policy.tokenizer.__class__.__name__}"
          f" (vocab {policy.tokenizer.vocab_size}); LM {sum(p.numel() for p in policy.lm.parameters()) / 1e6:.2f} M "
          "parameters", flush=True)
    losses = supervised_finetune(policy, demos, sft_cfg)
    out = Path(args.out)
    digest = save_policy(policy, out, version + 1)
    plot_curve(losses, out / "sft_loss.png")
    (out / "sft_log.json").write_text(json.dumps({"datasets": args.dataset, "config": sft_cfg.model_dump(),
                                                  "final_nll": sum(losses[-50:]) / len(losses[-50:])}, indent=1))
    print(f"[sft] final token NLL {sum(losses[-50:]) / len(losses[-50:]):.3f}; checkpoint {out} (sha256 {digest[:12]}…)")
    return 0


def cmd_rft(args) -> int:
    import torch
    from accelerate import Accelerator

    from robot_rl.policies import load_policy, save_policy
    from robot_rl.rl.continual import RFTFileConfig
    from robot_rl.rl.lifelong_rft import plot_reward_curves, reinforcement_finetune, write_history

    torch.set_num_threads(args.threads)
    cfg = RFTFileConfig.load(args.config)
    updates = {k: v for k, v in (("iterations", args.iterations), ("seed", args.seed)) if v is not None}
    rft_cfg = cfg.rft.model_copy(update=updates)
    policy, version = load_policy(args.checkpoint)
    if policy.spec.type != "tokenized":
        raise SystemExit(f"{args.checkpoint} holds a {policy.spec.type} policy; rft needs a tokenized one "
                         "(robot-rl sft)")
    _check_action_names(args.dataset, list(policy.spec.action_names))
    demos = _load_demos(args, policy.spec.horizon)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    history = reinforcement_finetune(policy, demos, rft_cfg, accelerator=accelerator)
    if accelerator.is_main_process:
        out = Path(args.out)
        digest = save_policy(policy, out, version + 1)
        plot_reward_curves(history, out / "rft_rewards.png")
        write_history(history, out / "rft_log.json", rft_cfg)
        first, last = history[: max(1, len(history) // 10)], history[-max(1, len(history) // 10):]
        for name in ("qacr", "ctar", "fcr", "mdpr"):
            print(f"[rft] {name.upper():5s} {sum(h[name] for h in first) / len(first):.3f} -> "
                  f"{sum(h[name] for h in last) / len(last):.3f}")
        print(f"[rft] checkpoint {out} version {version + 1} (sha256 {digest[:12]}…)")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", nargs="+", required=True, help="LeRobot v3 dataset root(s)")
    parser.add_argument("--config", default="config/rft.yaml")
    parser.add_argument("--out", required=True, help="checkpoint directory to write")
    parser.add_argument("--images", action="store_true", help="read the datasets' camera videos")
    parser.add_argument("--instruction", default=None, help="instruction for every frame (default: its task)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def register(subparsers) -> None:
    sft = subparsers.add_parser("sft", help="supervised fine-tuning of a tokenized chunk policy from LeRobot data")
    _common(sft)
    sft.add_argument("--init", default=None, help="continue from this tokenized checkpoint")
    sft.add_argument("--pretrained", action="store_true", help="load tokenized.lm_path's weights into the LM")
    sft.add_argument("--steps", type=int, default=None)
    sft.set_defaults(func=cmd_sft)
    rft = subparsers.add_parser("rft", help="LifeLong-RFT: offline GRPO with the multi-dimensional process reward")
    _common(rft)
    rft.add_argument("--checkpoint", required=True, help="tokenized policy to start from (π_ref)")
    rft.add_argument("--iterations", type=int, default=None)
    rft.set_defaults(func=cmd_rft)
