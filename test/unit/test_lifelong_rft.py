"""LifeLong-RFT: MDPR values, GRPO pieces, the tokenized policy (images, checkpoints, serving), sft/rft commands."""
import json
import math

import numpy as np
import pytest
import torch

from robot_rl.core.observation import Observation
from robot_rl.core.types import EE_SPACE_NAMES
from robot_rl.core.state import STATE_NAMES
from robot_rl.data.lerobot import LeRobotWriter
from robot_rl.policies import (CheckpointError, build_policy, load_policy, policy_from_bytes,
                               policy_to_bytes, save_policy)
from robot_rl.policies.action_tokenizers import (BinningTokenizer, FastTokenizer, TokenizerConfig, fit_tokenizer,
                                                 make_tokenizer)
from robot_rl.policies.normalizer import Normalizer
from policy_fixtures import ee_normalizer, tokenized_spec
from robot_rl.policies.tokenized import ACTION_OFFSET, EOS, PAD, TEXT_OFFSET
from robot_rl.rl.continual import continual_metrics
from robot_rl.rl.lifelong_rft import (Demos, GRPOTrainer, MDPRConfig, RFTConfig, SFTConfig, group_advantages,
                                      grpo_loss, lr_factor, malformed_rate, mdpr, supervised_finetune)

torch.set_num_threads(1)


# ---- MDPR --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tokenizer", [BinningTokenizer(4, 3, 256), FastTokenizer(4, 3, 10.0)], ids=["bin", "fast"])
def test_mdpr_exact_copy_scores_1_1_and_undecodable_scores_0(tokenizer):
    chunk = np.random.default_rng(0).uniform(-1, 1, (4, 3))
    ref_ids = tokenizer.encode(chunk)
    ref, ref_elements = tokenizer.decode(ref_ids).actions, tokenizer.elements(ref_ids)
    assert mdpr(ref_elements, ref_elements, ref, ref, gripper_dim=2) == (1.0, 1.0, 1.0, pytest.approx(1.1))
    broken = ref_ids[:-1]  # one element short: does not decode
    decoded = tokenizer.decode(broken)
    assert not decoded.valid
    assert mdpr(None, ref_elements, decoded.actions, ref, gripper_dim=2) == (0.0, 0.0, 0.0, 0.0)


def test_mdpr_terms_by_hand():
    ref = np.array([[0.2, -0.4, 1.0], [0.2, -0.4, -1.0]])           # H = 2, pose dims 0, 1, gripper dim 2
    pred = np.array([[0.4, -0.4, 1.0], [0.2, 0.0, 1.0]])            # step 0: d = 0.1, grip ok; step 1: d = 0.2, grip flipped
    ref_el, pred_el = [1, 2, 3, 4, 5, 6], [1, 9, 3, 4, 5, 6, 7]      # 5 of the first 6 agree, max length 7
    terms = mdpr(pred_el, ref_el, pred, ref, gripper_dim=2)
    ctar = ((0.7 * math.exp(-0.5) + 0.3) + (0.7 * math.exp(-1.0) + 0.0)) / 2
    assert terms.qacr == pytest.approx(5 / 7)
    assert terms.ctar == pytest.approx(ctar)
    assert terms.fcr == 1.0
    assert terms.mdpr == pytest.approx(0.7 * 5 / 7 + 0.3 * ctar + 0.1)
    custom = mdpr(pred_el, ref_el, pred, ref, gripper_dim=None, cfg=MDPRConfig(omega=0.0, lam=0.0, alpha=1.0))
    assert custom.mdpr == pytest.approx(np.mean(np.exp(-np.array([0.2 / 3, 2.4 / 3]))))  # all three dims are pose
    assert mdpr(pred_el, ref_el, pred[:1], ref, gripper_dim=2).mdpr == 0.0  # wrong shape counts as invalid


def test_qacr_compares_decoded_coefficients_not_bpe_ids():
    """One coefficient off changes the BPE merges and shifts the ids after it; QACR on elements stays (E − 1)/E."""
    rng = np.random.default_rng(0)
    chunks = np.clip(rng.uniform(-0.9, 0.9, (300, 1, 3)) + rng.normal(0, 0.1, (300, 4, 3)), -1, 1)
    cfg = fit_tokenizer(TokenizerConfig(kind="fast", bpe_vocab_size=120), chunks)
    tok = make_tokenizer(cfg, 4, 3)
    ref_ids = tok.encode(chunks[0])
    q = tok.coefficients(chunks[0])
    q[0] += 1
    pred_ids = tok.bpe.encode(tok._text(q)).ids
    pred, ref = tok.decode(pred_ids), tok.decode(ref_ids)
    assert pred.valid and pred_ids != ref_ids
    terms = mdpr(tok.elements(pred_ids), tok.elements(ref_ids), pred.actions, ref.actions, gripper_dim=2)
    assert terms.qacr == pytest.approx(11 / 12)
    id_agreement = sum(a == b for a, b in zip(pred_ids, ref_ids)) / max(len(pred_ids), len(ref_ids))
    assert id_agreement < terms.qacr


# ---- GRPO pieces ----------------------------------------------------------------------------------------------------
def test_group_advantages_z_score_floor_and_drop_zero_spread():
    rewards = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5001]])
    A, keep = group_advantages(rewards, std_floor=0.02)
    assert keep.tolist() == [True, False, True]
    torch.testing.assert_close(A[0].mean(), torch.tensor(0.0))
    torch.testing.assert_close(A[0].std(unbiased=False), torch.tensor(1.0), atol=1e-5, rtol=0)
    assert A[2].abs().max() < 0.01  # a 1e-4 spread stays a small advantage instead of ±1.7
    assert torch.isfinite(A).all()


def test_grpo_loss_clips_the_ratio_and_kl_is_zero_on_identical_policies():
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.9]]))
    mask = torch.tensor([[True, True, False]])
    loss, stats = grpo_loss(logp, logp, logp, torch.tensor([2.0]), mask, 0.2, 0.04)
    assert stats["kl"] == 0.0 and stats["clip_frac"] == 0.0 and stats["ratio_dev"] == 0.0
    assert loss.item() == pytest.approx(-2.0)  # ratio 1: −A
    up = logp + torch.tensor([[0.5, 0.5, 0.0]])  # ratio e^0.5 > 1 + ε on both masked tokens
    loss, stats = grpo_loss(up, logp, up, torch.tensor([2.0]), mask, 0.2, 0.0)
    assert loss.item() == pytest.approx(-2.0 * 1.2) and stats["clip_frac"] == 1.0


def toy_policy():
    """A 2-step, 1-D action with 8 bins: 64 valid completions, small enough to compute E[MDPR] exactly."""
    spec = tokenized_spec(action_names=("x",), state_dim=2, horizon=2, tokenizer={"kind": "bin", "bins": 8})
    torch.manual_seed(0)
    return build_policy(spec)


TOY_PAIRS = [(a, b) for a in range(8) for b in range(8)]
TOY_SEQUENCES = torch.tensor([[ACTION_OFFSET + a, ACTION_OFFSET + b, EOS] for a, b in TOY_PAIRS])


def toy_probabilities(policy, obs, temperature=1.0) -> np.ndarray:
    """π_τ of each of the 64 completions from the teacher-forced constrained log-probabilities."""
    with torch.no_grad():
        return policy(obs, TOY_SEQUENCES, len(TOY_PAIRS), temperature).sum(1).exp().numpy()


def exact_expected_reward(policy, obs, ref_chunk) -> float:
    """Σ over every completion of π(completion) · MDPR (constrained decoding: the 64 are all there is)."""
    tok = policy.tokenizer
    ref_ids = tok.encode(ref_chunk)
    ref, ref_el = tok.decode(ref_ids).actions, tok.elements(ref_ids)
    reward = np.array([mdpr(tok.elements([a, b]), ref_el, tok.decode([a, b]).actions, ref, None).mdpr
                       for a, b in TOY_PAIRS])
    return float(toy_probabilities(policy, obs) @ reward)


def test_constrained_log_probs_are_the_sampling_distribution():
    """The ratio and KL use the sampler's distribution: the 64 completions' teacher-forced π_τ sum to 1, and
    generate at the same τ draws them with those frequencies."""
    policy = toy_policy()
    obs = {"state": torch.tensor([[1.0, -1.0]]), "instruction": ["toy"]}
    for tau in (1.0, 0.5):
        prob = toy_probabilities(policy, obs, tau)
        assert prob.sum() == pytest.approx(1.0, abs=1e-4)
    samples = policy.generate(obs, 4000, torch.Generator().manual_seed(0), 0.5)
    assert (samples[:, 2] == EOS).all()
    index = ((samples[:, 0] - ACTION_OFFSET) * 8 + samples[:, 1] - ACTION_OFFSET).numpy()
    empirical = np.bincount(index, minlength=64) / len(index)
    assert 0.5 * np.abs(empirical - prob).sum() < 0.08  # total variation; ~0.05 expected from 4000 draws


def test_one_grpo_iteration_with_several_updates_raises_the_reward_and_engages_the_clip():
    policy = toy_policy()
    obs = {"state": torch.tensor([[1.0, -1.0]]), "instruction": ["toy"]}
    ref_chunk = np.array([[0.43], [-0.43]])
    # a short SFT on a different chunk: the policy leans toward it, mostly not on the reference
    warmup = Demos(obs["state"].numpy(), np.array([[[0.43], [0.43]]]), ["toy"], {}, np.zeros(1, np.int64))
    supervised_finetune(policy, warmup, SFTConfig(steps=3, batch_size=1, lr=1e-2))
    before = exact_expected_reward(policy, obs, ref_chunk)

    trainer = GRPOTrainer(policy, RFTConfig(group_size=32, lr=3e-3, epochs=2, minibatches=2, seed=0))
    probe = policy.generate(obs, 16, torch.Generator().manual_seed(5))
    assert trainer.kl_to_reference(obs, probe, 16).item() == 0.0  # π_ref is a copy: k3 KL exactly 0
    stats = trainer.step(obs, torch.as_tensor(ref_chunk, dtype=torch.float32)[None])
    assert stats["groups_kept"] == 1 and stats["updates"] == 4 and stats["malformed"] == 0.0
    assert stats["ratio_dev"] > 0.01 and stats["clip_frac"] > 0  # π_θ moved off π_old within the batch
    after = exact_expected_reward(policy, obs, ref_chunk)
    assert after > before + 0.03, (before, after)  # ~+0.07 here
    assert trainer.kl_to_reference(obs, probe, 16).item() > 0


def test_single_update_never_clips():
    """The old setting (one update per batch): ρ ≡ 1, so the clip can never engage."""
    policy = toy_policy()
    obs = {"state": torch.tensor([[1.0, -1.0]]), "instruction": ["toy"]}
    trainer = GRPOTrainer(policy, RFTConfig(group_size=16, lr=3e-3, epochs=1, minibatches=1, seed=0))
    stats = trainer.step(obs, torch.tensor([[[0.43], [-0.43]]]))
    assert stats["updates"] == 1 and stats["clip_frac"] == 0.0 and stats["ratio_dev"] < 1e-5


def test_zero_spread_group_is_skipped():
    policy = toy_policy()
    push = torch.zeros(policy.vocab_size)
    push[ACTION_OFFSET + 3] = 60.0  # a policy sure of one bin: every completion of a group is the same
    policy.lm.lm_head.register_forward_hook(lambda module, inputs, output: output + push)
    trainer = GRPOTrainer(policy, RFTConfig(group_size=4))
    before = [p.clone() for p in policy.parameters()]
    stats = trainer.step({"state": torch.zeros(2, 2), "instruction": ["toy", "toy"]}, torch.zeros(2, 2, 1))
    assert stats["groups_kept"] == 0 and stats["reward_std"] == 0.0 and math.isnan(stats["loss"])
    assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters()))


# ---- the tokenized policy ------------------------------------------------------------------------------------------
def test_decode_validity_of_generated_sequences():
    policy = build_policy(tokenized_spec())
    n = policy.tokenizer.max_tokens
    good = torch.tensor([ACTION_OFFSET + 3] * n + [EOS])
    assert policy.decode(good).valid and policy.decode(good).actions.shape == (4, 3)
    no_eos = torch.tensor([ACTION_OFFSET + 3] * (n + 1))
    text_inside = torch.tensor([ACTION_OFFSET + 3] * (n - 1) + [TEXT_OFFSET + 65, EOS])
    short = torch.tensor([ACTION_OFFSET + 3] * (n - 1) + [EOS, PAD])
    for bad in (no_eos, text_inside, short):
        assert policy.decode(bad) == (None, False)
        lenient = policy.decode(bad, strict=False)
        assert not lenient.valid and lenient.actions.shape == (4, 3)


def adversarial_policy(tokenizer: dict, bias: str):
    """A tokenized policy whose LM output is pushed hard toward malformed completions."""
    torch.manual_seed(0)
    policy = build_policy(tokenized_spec(tokenizer=tokenizer))
    if tokenizer.get("bpe_vocab_size"):  # a BPE fitted on smooth chunks: long pieces exist
        chunks = np.clip(np.random.default_rng(0).normal(0, 0.3, (200, 1, 3)) + np.zeros((200, 4, 3)), -1, 1)
        cfg = fit_tokenizer(TokenizerConfig(**tokenizer), chunks)
        policy = build_policy(tokenized_spec(tokenizer=cfg.model_dump()))
    lengths = policy.piece_lengths.float()
    push = torch.zeros(policy.vocab_size)
    if bias == "text":        # non-action ids: PAD, BOS and the instruction bytes, then EOS right away
        push[:ACTION_OFFSET] = 60.0
    elif bias == "overshoot":  # the longest pieces (BPE) and never EOS
        push = 10.0 * lengths
        push[EOS] = -60.0
    else:                      # large random logits
        push = 30.0 * torch.randn(policy.vocab_size, generator=torch.Generator().manual_seed(1))
    policy.lm.lm_head.register_forward_hook(lambda module, inputs, output: output + push)
    return policy


@pytest.mark.parametrize("bias", ["text", "overshoot", "random"])
@pytest.mark.parametrize("tokenizer", [{"kind": "bin", "bins": 16}, {"kind": "fast", "scale": 10.0},
                                       {"kind": "fast", "scale": 10.0, "bpe_vocab_size": 120}],
                         ids=["bin", "fast", "fast_bpe"])
def test_constrained_decoding_never_writes_a_malformed_chunk(tokenizer, bias):
    policy = adversarial_policy(tokenizer, bias)
    obs = {"state": torch.randn(4, 4, generator=torch.Generator().manual_seed(0))}
    for tau in (1.0, 0.0):
        tokens = policy.generate(obs, 8, torch.Generator().manual_seed(2), tau)
        assert all(policy.decode(seq).valid for seq in tokens), (bias, tau)
    assert policy.sample(obs, 2).shape == (4, 2, 4, 3)
    demos = Demos(obs["state"].numpy(), np.zeros((4, 4, 3)), [""] * 4)
    assert malformed_rate(policy, demos, 1.0) == 0.0  # what the bench logs after every stage
    if bias == "text":  # unconstrained, this policy writes no action at all
        with torch.no_grad():
            logits = policy.lm(inputs_embeds=policy.prefix_embeds(obs)).logits[:, -1]
        assert (logits.argmax(-1) < ACTION_OFFSET).all()


@pytest.mark.parametrize("vision", ["cnn", "vit"])
def test_image_conditioning(vision):
    torch.manual_seed(0)
    policy = build_policy(tokenized_spec(cameras=("front",), vision=vision))
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 40, 40), generator=g, dtype=torch.uint8)  # resized to 32 inside
    obs = {"state": torch.randn(2, 4, generator=g), "images": {"front": images}}
    chunks = policy.sample(obs, 3, torch.Generator().manual_seed(1))
    assert chunks.shape == (2, 3, 4, 3) and torch.isfinite(chunks).all()
    policy.train()
    target = torch.rand(2, 4, 3) * 2 - 1
    loss = policy.loss(obs, target)
    assert loss.shape == (2,)
    loss.mean().backward()
    vision_grads = [p.grad for p in policy.vision.parameters() if p.grad is not None]
    assert vision_grads and sum(g.abs().sum() for g in vision_grads) > 0
    policy.eval()
    other = {"state": obs["state"], "images": {"front": 255 - images}}
    assert not torch.allclose(policy.loss(obs, target), policy.loss(other, target))  # the image changes π
    with pytest.raises(KeyError, match="front"):
        policy.sample({"state": obs["state"]})


def test_checkpoint_round_trip_and_served_by_the_policy_node_backend(tmp_path):
    from robot_rl.nodes.policy import PolicyConfig, make_backend

    torch.manual_seed(0)
    spec = tokenized_spec(action_names=EE_SPACE_NAMES, state_dim=len(STATE_NAMES), horizon=5, arch="qwen2",
                          tokenizer={"kind": "fast", "scale": 10.0})
    normalizer = Normalizer.from_stats([-0.01] * 6 + [0.0], [0.01] * 6 + [0.08], np.zeros(15), np.ones(15))
    policy = build_policy(spec, normalizer)
    digest = save_policy(policy, tmp_path / "ckpt", version=3)
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["sha256"] == digest
    loaded, version = load_policy(tmp_path / "ckpt")
    assert version == 3 and loaded.spec == spec
    obs = {"state": torch.randn(2, 15)}
    torch.testing.assert_close(policy.sample(obs, 2, torch.Generator().manual_seed(0)),
                               loaded.sample(obs, 2, torch.Generator().manual_seed(0)), rtol=0, atol=0)

    blob = policy_to_bytes(policy, 4)
    bad = blob.replace(b'arch\\":\\"qwen2', b'arch\\":\\"gpt-9')  # same length: the header stays readable
    assert bad != blob
    with pytest.raises(CheckpointError, match="arch"):  # what the node refuses instead of crashing
        policy_from_bytes(bad)

    backend = make_backend(PolicyConfig(backend="learned", checkpoint=str(tmp_path / "ckpt")))
    joints = np.r_[np.zeros(7), 0.04]
    points = backend.act(Observation(0.0, {"joint_states": joints, "ee_pose": ((0.5, 0.0, 0.3), (0, 1, 0, 0))}))
    assert points.shape == (5, 7) and np.isfinite(points).all()
    assert (np.abs(points[:, :6]) <= 0.01 + 1e-6).all() and ((points[:, 6] >= 0) & (points[:, 6] <= 0.08)).all()


# ---- commands ------------------------------------------------------------------------------------------------------
def write_dataset(root, episodes=3, length=24):
    """Straight-line EE moves toward a goal that depends on the state: a learnable state → chunk map."""
    rng = np.random.default_rng(0)
    with LeRobotWriter(root, 15.0, STATE_NAMES, EE_SPACE_NAMES) as writer:
        for _ in range(episodes):
            direction = rng.uniform(-1, 1, 3)
            for t in range(length):
                state = np.r_[direction, rng.normal(0, 0.01, 12)].astype(np.float32)
                action = np.r_[0.01 * direction, np.zeros(3), 0.08 if t < length // 2 else 0.0]
                writer.add_frame(state, action, 0.0, t == length - 1, False, task="move to the goal")
            writer.save_episode(success=True)


def test_sft_and_rft_commands(tmp_path):
    from robot_rl.commands import main

    write_dataset(tmp_path / "data")
    config = tmp_path / "rft.yaml"
    config.write_text(
        "policy: {horizon: 4, execute_steps: 4, hidden_dim: 32, depth: 1,\n"
        "         tokenized: {tokenizer: {kind: fast, scale: 10.0, bpe_vocab_size: 80}, max_instruction_bytes: 8}}\n"
        "sft: {steps: 40, batch_size: 16, lr: 3.0e-3}\n"
        "rft: {iterations: 3, batch_size: 4, group_size: 4, lr: 1.0e-4}\n")
    common = ["--dataset", str(tmp_path / "data"), "--config", str(config)]
    assert main(["sft", *common, "--out", str(tmp_path / "sft")]) == 0
    sft_log = json.loads((tmp_path / "sft" / "sft_log.json").read_text())
    assert sft_log["final_nll"] < math.log(80 + 259)  # below the uniform distribution over the vocabulary
    assert (tmp_path / "sft" / "sft_loss.png").stat().st_size > 0
    policy, version = load_policy(tmp_path / "sft")
    assert version == 0 and policy.tokenizer.vocab_size == 80

    assert main(["rft", *common, "--checkpoint", str(tmp_path / "sft"), "--out", str(tmp_path / "rft")]) == 0
    _, version = load_policy(tmp_path / "rft")
    assert version == 1
    log = json.loads((tmp_path / "rft" / "rft_log.json").read_text())
    assert len(log["history"]) == 3 and {"qacr", "ctar", "fcr", "mdpr"} <= set(log["history"][0])
    assert (tmp_path / "rft" / "rft_rewards.png").stat().st_size > 0

    bad = tmp_path / "bad.yaml"
    bad.write_text("rft: {group_sise: 4}\n")
    with pytest.raises(ValueError, match="group_sise"):
        main(["rft", *common[:2], "--config", str(bad), "--checkpoint", str(tmp_path / "sft"), "--out",
              str(tmp_path / "x")])


def test_sft_lr_schedule_warms_up_then_decays_to_zero():
    steps = 1000
    cosine = [lr_factor(step, steps, "cosine") for step in range(steps)]
    assert cosine[0] == pytest.approx(1 / 50) and cosine[49] == pytest.approx(1.0)  # 5 % linear warm-up
    assert all(a >= b for a, b in zip(cosine[49:], cosine[50:]))                     # then never rises
    assert cosine[-1] < 1e-4 and cosine[525] == pytest.approx(0.5, abs=0.01)        # halfway after warm-up: 0.5
    assert {lr_factor(step, steps, "constant") for step in range(steps)} == {1.0}


def test_continual_metrics_by_hand():
    nan = float("nan")
    s = np.array([[0.8, 0.6, nan, nan],    # stage 0: base tasks 0, 1
                  [0.7, 0.6, 0.5, nan],    # stage 1: task 2 learned
                  [0.4, 0.5, 0.3, 0.9]])   # stage 2: task 3 learned
    m = continual_metrics(s, [0, 0, 1, 2])
    assert m["fwt"] == pytest.approx((0.8 + 0.6 + 0.5 + 0.9) / 4)
    assert m["nbt"] == pytest.approx((((0.8 - 0.7) + (0.8 - 0.4)) / 2 + ((0.0) + (0.1)) / 2 + 0.2) / 3)
    assert m["auc"] == pytest.approx(((0.8 + 0.7 + 0.4) / 3 + (0.6 + 0.6 + 0.5) / 3 + (0.5 + 0.3) / 2 + 0.9) / 4)


def test_lm_from_a_local_checkpoint(tmp_path):
    """`lm_path`: the LM takes the checkpoint's config (here Qwen2, width 48) and, on request, its weights."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    Qwen2ForCausalLM(Qwen2Config(vocab_size=100, hidden_size=48, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=4, num_key_value_heads=2)).save_pretrained(tmp_path / "lm")
    policy = build_policy(tokenized_spec(lm_path=str(tmp_path / "lm")))
    assert policy.lm.config.model_type == "qwen2" and policy.lm.config.hidden_size == 48
    assert policy.lm.get_input_embeddings().num_embeddings == policy.vocab_size
    policy.load_pretrained_lm()
    from safetensors.torch import load_file

    pretrained = load_file(tmp_path / "lm" / "model.safetensors")
    name = "model.layers.0.mlp.up_proj.weight"
    torch.testing.assert_close(policy.lm.state_dict()[name], pretrained[name])
    torch.testing.assert_close(policy.lm.state_dict()["model.embed_tokens.weight"][:100],
                               pretrained["model.embed_tokens.weight"])
    assert policy.sample({"state": torch.zeros(1, 4)}).shape == (1, 1, 4, 3)


@pytest.mark.graph
def test_tokenized_checkpoint_runs_in_the_sim_eval_graph(tmp_path):
    """The policy node (backend learned) serves a tokenized checkpoint through real processes and DDS: one reach
    episode of the sim_eval graph runs its steps on the published chunks."""
    from robot_rl import bringup
    from robot_rl.core.state import ENVIRONMENT_STATE_NAMES

    state_dim = len(STATE_NAMES) + len(ENVIRONMENT_STATE_NAMES)
    torch.manual_seed(0)
    spec = tokenized_spec(action_names=EE_SPACE_NAMES, state_dim=state_dim, horizon=5)
    spec = spec.model_copy(update={"environment_state": True})
    save_policy(build_policy(spec, ee_normalizer(state_dim)), tmp_path / "ckpt", version=0)
    results = tmp_path / "results.jsonl"
    proc = bringup.start_graph("config/graphs/sim_eval.yaml", "tokenized_ci", [
        "mujoco_bridge.task=reach", f"policy.checkpoint={tmp_path / 'ckpt'}", "episode_manager.num_episodes=1",
        "episode_manager.max_steps=20", f"episode_manager.results_path={results}"])
    try:
        assert proc.wait(timeout=120) == 0, proc.logs
    finally:
        proc.stop()
    episodes = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    assert len(episodes) == 1 and episodes[0]["steps"] >= 15, episodes
