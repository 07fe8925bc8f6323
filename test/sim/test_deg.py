"""DEG on a small trained model (contrastive encoder + guidance providers trained here on scripted push demos,
thresholds calibrated on a held-out share, diagnostics on other held-out episodes). The reward's logic on hand-made
latents: test/unit/test_deg_reward.py."""
import json

import numpy as np
import pytest
import torch

from robot_rl.data.collect_sim import collect_demos
from robot_rl.rewards.deg import encode, load_encoder
from robot_rl.rewards.deg_tools import diagnostics, expert_videos, train_deg
from robot_rl.rewards.guidance import DiffusionGuidance, load_provider


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("deg")
    collect_demos("push", 8, noise=0.3, seed=0, root=root / "train", cameras=["front"])
    collect_demos("push", 5, noise=0.3, seed=100, root=root / "heldout", cameras=["front"])
    model = root / "model"
    train_deg(root / "train", "front", model, ["latent", "nearest"], encoder_steps=300, guidance_steps=300)
    return {"root": root, "model": model}


def test_training_calibrates_thresholds_on_held_out_demos(trained):
    _, meta = load_encoder(trained["model"])
    for name in ("latent", "nearest"):
        cal = meta["calibration"][name]
        assert cal["pairs"] > 0 and cal["mismatched_mean"] < cal["coarse_threshold"] <= cal["fine_threshold"] < 1
        assert cal["roc_auc"] > 0.8, (name, cal)


@pytest.mark.parametrize("guidance", ["nearest", "latent"])
def test_diagnostics_on_held_out_expert_episodes(trained, guidance):
    videos, task = expert_videos(trained["root"] / "heldout", "front")
    result = diagnostics(trained["model"], videos, task, guidance, shuffles=3)
    correlation = []
    for e in result["episodes"]:
        pointer = np.array(e["pointer"])
        assert np.all(np.diff(pointer) >= 0)                                 # the pointer never goes backwards
        correlation.append(np.corrcoef(np.arange(len(pointer)), pointer)[0, 1])
    # statistics over the five unseen scenes, not every one: a small model can lose one scene's guidance half-way
    assert np.median(correlation) > 0.75 and min(correlation) > 0.3, (guidance, correlation)  # progress follows time
    # matched pairs stand out on unseen scenes (measured: AUC 0.81 nearest, 0.88 latent). Ordered vs shuffled
    # returns are not asserted here: with this 300-step encoder on unseen push scenes the pointer stalls about as
    # often as shuffled frames move it (docs/rewards.md); test_deg_reward.py checks the order rule on a good
    # encoder's similarities and the claim bench measures it on its own model.
    assert result["roc_auc"] > 0.7 and result["mean_matched"] > result["mean_mismatched"] + 0.2, result["roc_auc"]


def test_eval_cli_writes_plots_and_summary(trained):
    from robot_rl import commands

    out = trained["root"] / "eval"
    assert commands.main(["deg", "eval", "--model", str(trained["model"]), "--dataset", str(trained["root"] / "heldout"),
                     "--guidance", "nearest", "--out", str(out)]) == 0
    assert (out / "diagnostics_nearest.png").stat().st_size > 10_000
    summary = json.loads((out / "diagnostics_nearest.json").read_text())
    assert len(summary["returns"]) == 5 and summary["mean_matched"] > summary["mean_mismatched"]


def test_every_provider_makes_unit_guidance_latents_from_a_first_frame(trained):
    encoder, meta = load_encoder(trained["model"])
    videos, task = expert_videos(trained["root"] / "heldout", "front")
    for name in ("latent", "nearest"):
        g = load_provider(trained["model"], name, encoder, meta).make_guidance(videos[0][0], task)
        assert g.latents.shape == (meta["num_frames"], encoder.dim)
        assert torch.allclose(g.latents.norm(dim=-1), torch.ones(meta["num_frames"]), atol=1e-5)
    # (b) the diffusers frame generator: a few training steps only (a smoke test of the interface, not quality)
    gen, losses = DiffusionGuidance.train(encoder, videos, num_frames=4, steps=3, batch=2)
    gen.sample_steps = 2
    g = gen.make_guidance(videos[0][0], task)
    assert g.frames.shape == (4, 64, 64, 3) and g.frames.dtype == np.uint8
    assert torch.allclose(g.latents, encode(encoder, g.frames)) and np.isfinite(losses).all()


def test_relabel_pays_the_demos_as_a_graphs_reward_source_does(trained, tmp_path):
    """The sim graph's source: success_reward at a successful episode's last frame (the step penalty is the learner's
    to add). DEG+ pays DEG's terms plus θ exactly there, the dataset's outcome standing in for the sim's verdict."""
    from robot_rl import commands
    from robot_rl.data.lerobot import DatasetError, LeRobotReader
    from robot_rl.rewards.params import DEGSourceParams, SourceConfig
    from robot_rl.rewards.relabel import relabel_dataset

    demos = trained["root"] / "train"
    assert commands.main(["reward", "relabel", "--graph", "config/graphs/sim_poco.yaml", "--dataset", str(demos),
                          "--out", str(tmp_path / "sim")]) == 0
    source, sim = LeRobotReader(demos), LeRobotReader(tmp_path / "sim")
    outcomes = [bool(ep["success"]) for ep in source.episodes]
    assert any(outcomes)
    for i, success in enumerate(outcomes):
        expected = np.zeros(source.episodes[i]["length"], np.float32)
        expected[-1] = 1.0 * success
        np.testing.assert_array_equal(sim.episode(i)["reward"], expected)
        np.testing.assert_array_equal(sim.episode(i)["action"], source.episode(i)["action"])

    params = DEGSourceParams(model_path=str(trained["model"]), guidance="nearest")
    deg = relabel_dataset(demos, tmp_path / "deg", SourceConfig(source="deg", deg=params))
    plus = relabel_dataset(demos, tmp_path / "deg+", SourceConfig(source="deg+", deg=params))
    assert (deg["source"], plus["source"]) == ("deg", "deg+")
    for i, success in enumerate(outcomes):
        dense = LeRobotReader(tmp_path / "deg").episode(i)["reward"]
        difference = LeRobotReader(tmp_path / "deg+").episode(i)["reward"] - dense
        expected = np.zeros_like(dense)
        expected[-1] = params.theta * success
        np.testing.assert_allclose(difference, expected, atol=1e-5)
        assert np.ptp(dense) > 0      # DEG's terms, not a constant
    with pytest.raises(DatasetError, match="'wrist'"):
        relabel_dataset(demos, tmp_path / "wrist", SourceConfig(source="deg", camera="wrist", deg=params))
