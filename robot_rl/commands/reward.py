"""`robot-rl deg train | eval` and `robot-rl reward train-classifier | relabel`.

    robot-rl deg train --dataset runs/data/push --camera front --out runs/deg/push --guidance latent nearest
    robot-rl deg eval --model runs/deg/push --dataset runs/data/push_heldout --out runs/deg/push/eval
    robot-rl reward train-classifier --dataset runs/data/pick_lift --camera front --out runs/classifier/pick_lift
    robot-rl reward relabel --graph config/graphs/sim_deg_poco.yaml --set reward.deg.model_path=runs/deg/reach \
        --dataset runs/data/reach --out runs/data/reach_deg
"""
from __future__ import annotations

import json
from pathlib import Path


def cmd_train(args) -> int:
    import torch

    from robot_rl.rewards.deg_tools import train_deg

    torch.set_num_threads(args.threads)
    summary = train_deg(args.dataset, args.camera, args.out, args.guidance, args.encoder_steps, args.guidance_steps,
                        args.diffusion_steps, args.num_frames, args.seed, args.image_size, args.holdout)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_eval(args) -> int:
    import torch

    from robot_rl.rewards.deg import load_encoder
    from robot_rl.rewards.deg_tools import diagnostics, expert_videos, plot_diagnostics

    torch.set_num_threads(args.threads)
    _, meta = load_encoder(Path(args.model))
    videos, task = expert_videos(args.dataset or meta["dataset"], meta["camera"])
    out = Path(args.out or Path(args.model) / "eval")
    out.mkdir(parents=True, exist_ok=True)
    print("| guidance | ordered return | shuffled return | matched cos | mismatched cos | ROC AUC | δ_c, δ_f used |\n"
          "|---|---|---|---|---|---|---|")
    for name in args.guidance or meta["guidance"]:
        result = diagnostics(args.model, videos, task, name)
        plot_diagnostics(result, out / f"diagnostics_{name}.png")
        summary = {k: v for k, v in result.items() if k != "episodes"}
        summary["returns"] = [e["return"] for e in result["episodes"]]
        (out / f"diagnostics_{name}.json").write_text(json.dumps(summary, indent=2))
        print(f"| {name} | {result['mean_return']:.2f} | {result['mean_shuffled_return']:.2f} | "
              f"{result['mean_matched']:.3f} | {result['mean_mismatched']:.3f} | {result['roc_auc']:.3f} | "
              f"{result['thresholds_used'][0]:.3f}, {result['thresholds_used'][1]:.3f} |")
    print(f"plots in {out}")
    return 0


def cmd_train_classifier(args) -> int:
    import numpy as np
    import torch

    from robot_rl.rewards.classifier import labelled_frames, train_classifier

    torch.set_num_threads(args.threads)
    frames, labels, _ = labelled_frames(args.dataset, args.camera)
    clf, losses = train_classifier(frames, labels, args.steps, seed=args.seed,
                                   meta={"dataset": str(args.dataset), "camera": args.camera})
    clf.save(args.out)
    p = clf.confidence(frames)
    print(f"{labels.sum()} success / {(~labels).sum()} failure frames; final loss {np.mean(losses[-50:]):.3f}; "
          f"training accuracy at 0.5: {np.mean((p >= 0.5) == labels):.3f} -> {args.out}")
    return 0


def cmd_relabel(args) -> int:
    import torch

    from robot_rl import bringup
    from robot_rl.rewards.relabel import relabel_dataset

    torch.set_num_threads(args.threads)
    cfg = bringup.node_config(bringup.prepare(args.graph, sets=args.set), "reward")
    summary = relabel_dataset(args.dataset, args.out, cfg)
    print(f"{summary['episodes']} episodes rewarded by {summary['source']}: mean return "
          f"{summary['recorded_return']:.3f} recorded, {summary['return']:.3f} relabelled -> {summary['out']}")
    return 0


def register(subparsers) -> None:
    deg = subparsers.add_parser("deg", help="DEG dense reward: train the encoder and guidance, run diagnostics")
    sub = deg.add_subparsers(dest="deg_command", required=True)
    train = sub.add_parser("train", help="train the contrastive encoder and guidance providers on expert videos")
    train.add_argument("--dataset", required=True, help="LeRobot v3 dataset with camera videos")
    train.add_argument("--camera", default="front")
    train.add_argument("--out", required=True)
    train.add_argument("--guidance", nargs="+", default=["latent", "nearest"],
                       choices=["latent", "diffusion", "nearest"])
    train.add_argument("--encoder-steps", type=int, default=1500)
    train.add_argument("--guidance-steps", type=int, default=1500)
    train.add_argument("--diffusion-steps", type=int, default=2000)
    train.add_argument("--num-frames", type=int, default=50, help="K guidance frames")
    train.add_argument("--image-size", type=int, default=64, help="encoder input (multiple of 16); larger resolves "
                                                                  "finer goals")
    train.add_argument("--holdout", type=float, default=0.2, help="share of the episodes (at least one) held out to "
                                                                  "calibrate δ_c, δ_f")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=1)
    train.set_defaults(func=cmd_train)
    ev = sub.add_parser("eval", help="diagnostics with plots: returns along ordered vs shuffled expert episodes, "
                                     "pointer, real/guidance similarity, matched/mismatched ROC AUC")
    ev.add_argument("--model", required=True)
    ev.add_argument("--dataset", default="", help="expert episodes to score (default: the training dataset)")
    ev.add_argument("--guidance", nargs="*", default=None)
    ev.add_argument("--out", default="")
    ev.add_argument("--threads", type=int, default=1)
    ev.set_defaults(func=cmd_eval)

    reward = subparsers.add_parser("reward", help="reward sources: train the image success classifier, relabel a "
                                                  "dataset")
    rsub = reward.add_subparsers(dest="reward_command", required=True)
    clf = rsub.add_parser("train-classifier", help="train the success classifier on labelled frames")
    clf.add_argument("--dataset", required=True)
    clf.add_argument("--camera", default="front")
    clf.add_argument("--out", required=True)
    clf.add_argument("--steps", type=int, default=1500)
    clf.add_argument("--seed", type=int, default=0)
    clf.add_argument("--threads", type=int, default=1)
    clf.set_defaults(func=cmd_train_classifier)
    rel = rsub.add_parser("relabel", help="a copy of a dataset rewarded by a graph's reward node (its source and "
                                          "parameters), for the learner's offline demonstrations")
    rel.add_argument("--graph", required=True, help="graph file whose reward node pays the online episodes")
    rel.add_argument("--set", action="append", default=[], metavar="NODE.KEY=VALUE",
                     help="the graph's overrides, as for the bringup (e.g. reward.deg.model_path=runs/deg/reach)")
    rel.add_argument("--dataset", required=True, help="LeRobot v3 dataset (with the reward's camera, if it reads one)")
    rel.add_argument("--out", required=True, help="new dataset directory (must not exist)")
    rel.add_argument("--threads", type=int, default=1)
    rel.set_defaults(func=cmd_relabel)
