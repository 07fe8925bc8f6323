"""Training and diagnosing a DEG model from a LeRobot dataset's expert videos (behind `robot-rl deg train | eval`,
the DEG bench and the tests)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np


def expert_videos(dataset: str | Path, camera: str, successful_only: bool = True) -> tuple[list[np.ndarray], str]:
    """The camera's frames of every (successful) episode of a LeRobot dataset, and its task name."""
    from robot_rl.data.lerobot import LeRobotReader

    reader = LeRobotReader(dataset)
    if camera not in reader.cameras:
        raise ValueError(f"{dataset} has no camera {camera!r} (it has {reader.cameras or 'none'})")
    keep = [i for i in range(reader.num_episodes) if not successful_only or reader.episodes[i].get("success", True)]
    if not keep:
        raise ValueError(f"{dataset}: no successful episodes to learn guidance from")
    videos = [reader.episode(i, images=True)[f"images.{camera}"] for i in keep]
    tasks = reader.episodes[keep[0]].get("tasks") or [""]
    return videos, tasks[0]


def train_deg(dataset: str | Path, camera: str, out: str | Path, guidance: list[str], encoder_steps: int = 1500,
              guidance_steps: int = 1500, diffusion_steps: int = 2000, num_frames: int = 50, seed: int = 0,
              image_size: int = 64, holdout: float = 0.2) -> dict:
    """Encoder f (InfoNCE) then the requested guidance providers, on all but a held-out share of the expert videos;
    the held-out ones calibrate δ_c, δ_f per provider (`deg.calibrate`, stored in deg.json with the ROC AUC)."""
    import torch

    from robot_rl.rewards.deg import (
        EncoderTraining,
        calibrate,
        save_encoder,
        train_encoder,
        training_meta,
    )
    from robot_rl.rewards.guidance import (
        DiffusionGuidance,
        LatentGuidance,
        NearestExpertGuidance,
        save_provider_meta,
    )

    out = Path(out)
    videos, task = expert_videos(dataset, camera)
    held = max(1, round(holdout * len(videos)))
    if len(videos) - held < 1:
        raise ValueError(f"{dataset}: {len(videos)} successful episodes; DEG needs at least 2 (one is held out to "
                         "calibrate the thresholds)")
    videos, calibration_videos = videos[:-held], videos[-held:]
    cfg = EncoderTraining(steps=encoder_steps, image_size=image_size, seed=seed)
    encoder, losses = train_encoder(videos, cfg)
    save_encoder(encoder, out, training_meta(cfg, videos, str(dataset), camera, task))
    curves = {"encoder_infonce": losses}
    meta: dict = {"num_frames": num_frames, "guidance": guidance, "calibration": {},
                  "calibration_episodes": len(calibration_videos)}
    for name in guidance:
        torch.manual_seed(seed)
        if name == "nearest":
            provider = NearestExpertGuidance(encoder, num_frames, videos)
        elif name == "latent":
            provider, curves["latent_guidance"] = LatentGuidance.train(encoder, videos, num_frames, guidance_steps,
                                                                       seed)
        elif name == "diffusion":
            provider, curves["diffusion_guidance"] = DiffusionGuidance.train(encoder, videos, num_frames,
                                                                             diffusion_steps, seed=seed)
            meta["diffusion_time_bins"] = provider.time_bins
        else:
            raise ValueError(f"unknown guidance provider {name!r}")
        provider.save(out)
        maps = [similarity_map(encoder, provider, v, task) for v in calibration_videos]
        meta["calibration"][name] = asdict(calibrate(maps))
    save_provider_meta(out, **meta)
    _plot_losses(curves, out / "training_losses.png")
    return {"out": str(out), "videos": len(videos), "frames": int(sum(len(v) for v in videos)),
            "calibration": meta["calibration"],
            "final_losses": {k: float(np.mean(v[-50:])) for k, v in curves.items()}}


def similarity_map(encoder, provider, video: np.ndarray, task: str) -> np.ndarray:
    """(T, K) cosines between the video's frames and the guidance made from its first frame."""
    from robot_rl.rewards.deg import encode

    return (encode(encoder, video) @ provider.make_guidance(video[0], task).latents.T).numpy()


def _plot_losses(curves: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3), squeeze=False)
    for ax, (name, values) in zip(axes[0], curves.items()):
        w = max(1, len(values) // 50)
        ax.plot(np.convolve(values, np.ones(w) / w, mode="valid"))
        ax.set_title(name)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def diagnostics(model: str | Path, videos: list[np.ndarray], task: str, guidance: str, shuffles: int = 3,
                seed: int = 0) -> dict:
    """The DEG diagnostics on expert episodes (ideally held out): per episode, the return and pointer along the
    ordered frames and along shuffled frames; over all, matched vs mismatched similarities with their ROC AUC and
    the thresholds they calibrate, next to those stored with the model (which the reward uses). Returns are
    undiscounted shaping (γ = 1), i.e. the potential Φ reached: with γ < 1 every step spent at a high potential
    costs (1 − γ)Φ, so a long expert episode would score below its own shuffled frames for taking its time."""
    from robot_rl.rewards.deg import (
        DEGParams,
        DEGReward,
        calibrate,
        encode,
        load_encoder,
    )
    from robot_rl.rewards.guidance import load_provider

    encoder, meta = load_encoder(Path(model))
    provider = load_provider(Path(model), guidance, encoder, meta)
    # undiscounted potential: an episode's return is the Φ it ends at, whatever the payment the learner gets
    reward = DEGReward(DEGParams(gamma=1.0, payment="potential"), model_calibration(meta, guidance))
    rng = np.random.default_rng(seed)
    episodes, maps = [], []
    for video in videos:
        g = provider.make_guidance(video[0], task).latents
        z = encode(encoder, video)
        sims = (z @ g.T).numpy()                           # real frame t vs guidance frame k
        maps.append(sims)
        reward.reset(g)
        ordered = [reward.step(zt) for zt in z]
        shuffled_returns = []
        for _ in range(shuffles):
            reward.reset(g)
            shuffled_returns.append(sum(s.reward for s in (reward.step(zt) for zt in z[rng.permutation(len(z))])))
        episodes.append({
            "return": float(sum(s.reward for s in ordered)),
            "cumulative": np.cumsum([s.reward for s in ordered]).tolist(),
            "pointer": [s.pointer for s in ordered],
            "coarse": float(sum(s.coarse for s in ordered)), "fine": float(sum(s.fine for s in ordered)),
            "goal": float(sum(s.goal for s in ordered)),
            "shuffled_return": float(np.mean(shuffled_returns)),
            "similarity": sims.tolist()})
    held_out = calibrate(maps)
    return {"guidance": guidance, "episodes": episodes,
            "mean_return": float(np.mean([e["return"] for e in episodes])),
            "mean_shuffled_return": float(np.mean([e["shuffled_return"] for e in episodes])),
            "mean_matched": held_out.matched_mean, "mean_mismatched": held_out.mismatched_mean,
            "roc_auc": held_out.roc_auc, "thresholds_used": [reward.coarse_threshold, reward.fine_threshold],
            "calibration_here": asdict(held_out), "calibration_stored": model_calibration(meta, guidance)}


def model_calibration(meta: dict, guidance: str) -> dict | None:
    """The thresholds calibrated for `guidance` when the model was trained (None for models trained before)."""
    return meta.get("calibration", {}).get(guidance)


def plot_diagnostics(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = result["episodes"]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    for e in eps:
        axes[0].plot(e["cumulative"], alpha=0.7)
        axes[1].plot(e["pointer"], alpha=0.7)
    axes[0].set(title="DEG return along expert episodes", xlabel="step", ylabel="cumulative reward")
    axes[1].set(title="pointer m (never decreases)", xlabel="step", ylabel="guidance frame")
    x = np.arange(len(eps))
    axes[2].bar(x - 0.2, [e["return"] for e in eps], 0.4, label="ordered")
    axes[2].bar(x + 0.2, [e["shuffled_return"] for e in eps], 0.4, label="shuffled frames")
    axes[2].set(title="episode return", xlabel="episode")
    axes[2].legend()
    im = axes[3].imshow(np.array(eps[0]["similarity"]), vmin=-1, vmax=1, cmap="viridis")
    axes[3].set(title="cos(real frame t, guidance k), episode 0", xlabel="guidance k", ylabel="real frame t",
                aspect="auto")
    fig.colorbar(im, ax=axes[3])
    fig.suptitle(f"DEG diagnostics ({result['guidance']} guidance): matched/mismatched ROC AUC "
                 f"{result['roc_auc']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
