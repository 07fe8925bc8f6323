"""`robot-rl sft` and `robot-rl rft`: the tokenized chunk policy from LeRobot v3 datasets.

    robot-rl sft --dataset runs/data/reach [more roots] --out runs/sft            # new policy (config/rft.yaml)
    robot-rl rft --dataset runs/data/reach --checkpoint runs/sft --out runs/rft   # GRPO with MDPR, no environment
    accelerate launch -m robot_rl.commands rft ...                                     # the same on several GPUs

Both write a checkpoint directory the policy node serves (backend learned), a curve PNG and a JSON log.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def cmd_sft(args) -> int:
    import torch

    from robot_rl.policies import load_policy, save_policy
    from robot_rl.rl.continual import RFTFileConfig
    from robot_rl.rl.lifelong_rft import load_datasets, new_tokenized_policy, supervised_finetune
    from robot_rl.rl.pretrain import plot_curve

    torch.set_num_threads(args.threads)
    cfg = RFTFileConfig.load(args.config)
    sft_cfg = cfg.sft.model_copy(update={k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None})
    if args.init:
        policy, version = load_policy(args.init)
        if policy.spec.type != "tokenized":
            raise SystemExit(f"{args.init} holds a {policy.spec.type} policy; sft trains tokenized policies")
        demos = load_datasets(args.dataset, list(policy.spec.action_names), policy.spec.horizon, args.images,
                              args.instruction)
    else:
        demos = load_datasets(args.dataset, None, int(cfg.policy.get("horizon", 5)), args.images, args.instruction)
        policy, version = new_tokenized_policy(args.dataset[0], demos, cfg.policy, args.pretrained), -1
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
    from robot_rl.rl.lifelong_rft import load_datasets, plot_reward_curves, reinforcement_finetune, write_history

    torch.set_num_threads(args.threads)
    cfg = RFTFileConfig.load(args.config)
    updates = {k: v for k, v in (("iterations", args.iterations), ("seed", args.seed)) if v is not None}
    rft_cfg = cfg.rft.model_copy(update=updates)
    policy, version = load_policy(args.checkpoint)
    if policy.spec.type != "tokenized":
        raise SystemExit(f"{args.checkpoint} holds a {policy.spec.type} policy; rft needs a tokenized one "
                         "(robot-rl sft)")
    demos = load_datasets(args.dataset, list(policy.spec.action_names), policy.spec.horizon, args.images,
                          args.instruction)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    history = reinforcement_finetune(policy, demos, rft_cfg, accelerator=accelerator)
    if accelerator.is_main_process:
        out = Path(args.out)
        digest = save_policy(policy, out, version + 1)
        plot_reward_curves(history, out / "rft_rewards.png")
        write_history(history, out / "rft_log.json", rft_cfg)
        import numpy as np

        first, last = history[: max(1, len(history) // 10)], history[-max(1, len(history) // 10):]
        for name in ("qacr", "ctar", "fcr", "mdpr", "malformed", "clip_frac", "kl"):
            print(f"[rft] {name:9s} {np.nanmean([h[name] for h in first]):.3f} -> "
                  f"{np.nanmean([h[name] for h in last]):.3f}")
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
